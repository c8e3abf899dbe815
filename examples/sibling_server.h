/* sibling_server.h — the server an example talks to (echo_session:
 * examples/echo_server, http_fetch: examples/http_server): the program
 * named on the command line, or by default the one built beside the
 * example, started on a free loopback port.
 *
 * This is the plumbing of a demo, not a pattern to copy: it blocks (a
 * plain posix_spawn and a read of the server's first line) and runs
 * before tl_run.
 */
#ifndef TULIP_SIBLING_SERVER_H
#define TULIP_SIBLING_SERVER_H

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The server's path into path (len bytes): arg if not NULL, else the
 * program `name` in this program's folder. Returns 0, or -1 if this
 * program's own path cannot be read. */
static inline int sibling_path(const char *arg, const char *name, char *path,
                               size_t len)
{
    if (arg) {
        snprintf(path, len, "%s", arg);
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", path, len - 32);
    if (n <= 0) return -1;
    path[n] = 0;
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, len - (size_t)(slash ? slash + 1 - path : 0),
             "%s", name);
    return 0;
}

/* Start argv[0] (argv: NULL-terminated) with its stdout on a pipe, and
 * read its port from the first line it prints ("listening on
 * 127.0.0.1:PORT") into *port. Returns the server's pid, or -1 after
 * saying why on stderr (prefixed with who): it could not start, or it
 * did not say where it listens (then it is killed and reaped). */
static inline pid_t sibling_start(const char *who, char *const argv[], int *port)
{
    int p[2];
    if (pipe(p) < 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    extern char **environ;
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (err) {
        fprintf(stderr, "%s: cannot start %s: %s\n", who, argv[0], strerror(err));
        close(p[0]);
        return -1;
    }
    FILE *f = fdopen(p[0], "r");
    char line[128] = "";
    if (!f || !fgets(line, sizeof line, f) ||
        sscanf(line, "listening on 127.0.0.1:%d", port) != 1) {
        fprintf(stderr, "%s: %s did not say where it listens\n", who, argv[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    fclose(f);
    return pid;
}

#endif
