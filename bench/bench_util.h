/* bench/bench_util.h: what more than one bench program measures with. */
#ifndef TULIP_BENCH_UTIL_H
#define TULIP_BENCH_UTIL_H

#include <stdio.h>
#include <unistd.h>

/* The process's resident set in bytes (from /proc/self/statm), 0 if it
 * cannot be read. */
static inline double bench_rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

#endif
