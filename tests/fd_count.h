/* tests/fd_count.h: how many fds the process has open, for leak checks.
 * No test framework needed, so that both the Criterion programs (through
 * helpers.h's tl_test_count_fds) and the tiny.h ones (tests/pg, ...) use
 * this one counter; compare a count before and after to catch a leak. */
#ifndef TULIP_TEST_FD_COUNT_H
#define TULIP_TEST_FD_COUNT_H

#include <dirent.h>

/* The fds open in this process (from /proc/self/fd), not counting the one
 * used to read the folder; -1 if /proc/self/fd cannot be read. */
static inline int tl_test_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

#endif
