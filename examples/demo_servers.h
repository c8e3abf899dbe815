/* demo_servers.h — the real servers the seed's live parts talk to.
 *
 * Each live part of the tour (httpx_get, stream_lines, db_transaction,
 * curl_fetch) starts its own server before its loop runs, on a free
 * loopback port, in a temporary folder, and stops it by its PID at the
 * end — also when the part fails or is interrupted with Ctrl-C:
 *   - nginx (Debian's nginx-light; the echo module, Debian's
 *     libnginx-mod-http-echo, for a trickling endpoint);
 *   - PostgreSQL (initdb + postgres from Debian's postgresql, as the
 *     postgres user when run as root: the server refuses root);
 *   - examples/http_server (the tour's own, beside this program).
 * A server that is not installed makes the part print one line saying
 * what to install and exit with DEMO_SKIPPED (tools/demo.sh then goes on).
 *
 * The servers run in their own process group, so the terminal's Ctrl-C
 * reaches only the demo, which then stops them in order; if the demo
 * itself dies, the kernel sends them a signal (PR_SET_PDEATHSIG).
 *
 * This is the plumbing of a demo, not a pattern to copy: it blocks (it
 * runs before tl_run), and polls child processes.
 */
#ifndef TULIP_DEMO_SERVERS_H
#define TULIP_DEMO_SERVERS_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEMO_SKIPPED 77
#define DEMO_NGINX "/usr/sbin/nginx"
#define DEMO_ECHO_MODULE "/usr/lib/nginx/modules/ngx_http_echo_module.so"

/* Every server started, so that one exit path stops them all. */
struct demo_child {
    pid_t pid;
    int stop_sig;   /* the signal that stops it cleanly */
    char dir[64];   /* its temporary folder ("" none), removed after:
                       /tmp/tulip-demo-<what>.<our pid>.XXXXXX */
};
static struct demo_child demo_children[4];
static volatile sig_atomic_t demo_interrupted;

static inline void demo_sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
}

/* Wait up to `secs` for pid to exit: its exit status (128 + signal), or
 * -1 after killing it (timeout, or Ctrl-C meanwhile). */
static inline int demo_wait(pid_t pid, double secs)
{
    for (int i = 0; i < (int)(secs * 50); i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 && errno != EINTR) return -1;
        if (demo_interrupted) break;
        demo_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return -1;
}

/* rm -rf dir (a folder this file made: /tmp/tulip-demo-*). */
static inline void demo_rmrf(const char *dir)
{
    if (strncmp(dir, "/tmp/tulip-demo-", 16) != 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0) demo_wait(pid, 30);
}

/* Stop every server this program started, by its PID, newest first. */
static inline void demo_stop_all(void)
{
    demo_interrupted = 0; /* stopping now: give each step its time */
    for (int i = (int)(sizeof demo_children / sizeof *demo_children) - 1; i >= 0; i--) {
        struct demo_child *c = &demo_children[i];
        if (c->pid > 0) {
            kill(c->pid, c->stop_sig);
            demo_wait(c->pid, 15);
            c->pid = 0;
        }
        if (c->dir[0]) {
            demo_rmrf(c->dir);
            c->dir[0] = 0;
        }
    }
}

static void demo_on_signal(int sig)
{
    demo_interrupted = sig;
}

/* Remove the folders of earlier runs that were killed (SIGKILL: no exit
 * path ran; their servers got PR_SET_PDEATHSIG): /tmp/tulip-demo-<what>.
 * <pid>.XXXXXX whose pid no longer exists. */
static inline void demo_clean_stale(void)
{
    DIR *d = opendir("/tmp");
    struct dirent *de;
    char path[300];
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, "tulip-demo-", 11) != 0) continue;
        const char *dot = strchr(de->d_name, '.');
        int pid = dot ? atoi(dot + 1) : 0;
        if (pid <= 1 || pid == (int)getpid()) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue; /* alive */
        snprintf(path, sizeof path, "/tmp/%s", de->d_name);
        demo_rmrf(path);
    }
    if (d) closedir(d);
}

/* Call first in main: servers are stopped at exit, and a Ctrl-C or a
 * SIGTERM while they start (before tl_run) stops the start-up cleanly. */
static inline void demo_begin(void)
{
    demo_clean_stale();
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(demo_stop_all);
    struct sigaction sa = {.sa_handler = demo_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Call right before tl_run: Ctrl-C then belongs to tulip again (it
 * cancels the main task, whose unwinding leads back to demo_stop_all).
 * Returns -1 if the user interrupted the start-up. */
static inline int demo_servers_ready(void)
{
    signal(SIGINT, SIG_DFL);
    if (demo_interrupted) {
        fprintf(stderr, "demo: interrupted\n");
        return -1;
    }
    return 0;
}

/* A server did not start (it said why), or the user interrupted: exit 1. */
static inline int demo_start_failed(void)
{
    if (demo_interrupted) fprintf(stderr, "demo: interrupted\n");
    return 1;
}

/* Make a temporary folder owned by `uid` (-1: unchanged) and record it. */
static inline struct demo_child *demo_new_child(const char *what, uid_t uid, gid_t gid)
{
    for (size_t i = 0; i < sizeof demo_children / sizeof *demo_children; i++) {
        struct demo_child *c = &demo_children[i];
        if (c->pid || c->dir[0]) continue;
        snprintf(c->dir, sizeof c->dir, "/tmp/tulip-demo-%s.%d.XXXXXX", what, (int)getpid());
        if (!mkdtemp(c->dir)) {
            perror("demo: mkdtemp");
            c->dir[0] = 0;
            return NULL;
        }
        if (uid != (uid_t)-1 && chown(c->dir, uid, gid) != 0) {
            perror("demo: chown");
            return NULL;
        }
        return c;
    }
    return NULL;
}

/* fork + exec argv with stdout and stderr into `log` ("": a pipe whose
 * read end goes to *out_fd), stdin /dev/null, in its own process group,
 * as uid/gid when `drop`. `deathsig` != 0: the kernel sends it when this
 * program dies. Returns the pid, or -1. */
static inline pid_t demo_spawn(char *const argv[], const char *log, int *out_fd, int drop,
                               uid_t uid, gid_t gid, int deathsig)
{
    int p[2] = {-1, -1};
    if (out_fd && pipe(p) < 0) return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setpgid(0, 0); /* the terminal's Ctrl-C is the demo's alone */
        if (drop && (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
            _exit(126);
        if (deathsig) { /* after the uid change, which clears it */
            prctl(PR_SET_PDEATHSIG, deathsig);
            if (getppid() != parent) _exit(1);
        }
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) dup2(in, 0);
        int fd = out_fd ? p[1] : open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            if (!out_fd) dup2(fd, 2);
        }
        if (out_fd) close(p[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    if (out_fd) {
        close(p[1]);
        *out_fd = p[0];
    }
    return pid;
}

static inline int demo_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static inline int demo_can_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static inline void demo_show_log(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
    if (f) fclose(f);
}

static inline int demo_write(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* Wait up to 20 s until the port accepts connections and pid still runs. */
static inline int demo_wait_port(pid_t pid, int port)
{
    for (int i = 0; i < 1000 && !demo_interrupted; i++) {
        if (demo_can_connect(port)) return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) return -1;
        demo_sleep_ms(20);
    }
    return -1;
}

/* ---- nginx ---------------------------------------------------------------- */

/* Start nginx on a free loopback port serving `files` (name, content
 * pairs, NULL-terminated) from its root, plus the `locations` given (nginx
 * configuration). `echo`: the locations use the echo module. Returns the
 * port, DEMO_SKIPPED negated (-77) when nginx is missing (one line
 * printed), or -1. */
static inline int demo_nginx_start(const char *const *files, const char *locations, int echo)
{
    if (access(DEMO_NGINX, X_OK) != 0 || (echo && access(DEMO_ECHO_MODULE, R_OK) != 0)) {
        printf("skipped: this part needs nginx%s: install nginx-light%s "
               "(scripts/install-deps.sh does)\n",
               echo ? " and its echo module" : "",
               echo ? " and libnginx-mod-http-echo" : "");
        return -DEMO_SKIPPED;
    }
    struct demo_child *c = demo_new_child("nginx", (uid_t)-1, (gid_t)-1);
    if (!c) return -1;
    char path[128], conf[4096];
    snprintf(path, sizeof path, "%s/www", c->dir);
    if (mkdir(path, 0755) != 0) return -1;
    for (size_t i = 0; files && files[i]; i += 2) {
        snprintf(path, sizeof path, "%s/www", c->dir);
        if (demo_write(path, files[i], files[i + 1]) != 0) return -1;
    }
    int port = demo_free_port();
    if (port <= 0) return -1;
    const char *d = c->dir;
    snprintf(conf, sizeof conf,
             "%s%s%s"
             "daemon off;\nmaster_process off;\n"
             "pid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
             "events { worker_connections 1024; }\n"
             "http {\n"
             "  access_log off;\n"
             "  client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
             "  fastcgi_temp_path %s/fcgi; uwsgi_temp_path %s/uwsgi;\n"
             "  scgi_temp_path %s/scgi;\n"
             "  types { text/plain txt; application/json json; }\n"
             "  server {\n"
             "    listen 127.0.0.1:%d;\n"
             "    root %s/www;\n"
             "%s"
             "  }\n"
             "}\n",
             echo ? "load_module " : "", echo ? DEMO_ECHO_MODULE : "", echo ? ";\n" : "",
             d, d, d, d, d, d, d, port, d, locations ? locations : "");
    if (demo_write(d, "nginx.conf", conf) != 0) return -1;
    char confpath[128], log[128];
    snprintf(confpath, sizeof confpath, "%s/nginx.conf", d);
    snprintf(log, sizeof log, "%s/stderr.log", d);
    char *argv[] = {DEMO_NGINX, "-p", (char *)d, "-c", confpath, NULL};
    c->stop_sig = SIGTERM; /* nginx: fast shutdown */
    c->pid = demo_spawn(argv, log, NULL, 0, 0, 0, SIGTERM);
    if (c->pid < 0 || demo_wait_port(c->pid, port) != 0) {
        if (demo_interrupted) return -1;
        fprintf(stderr, "demo: nginx did not start\n");
        demo_show_log(log);
        snprintf(log, sizeof log, "%s/error.log", d);
        demo_show_log(log);
        return -1;
    }
    return port;
}

/* ---- examples/http_server ------------------------------------------------- */

/* Start http_server (beside this program) on a free port, answering each
 * request after delay_ms. Returns the port, or -1. */
static inline int demo_http_server_start(int delay_ms)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0) return -1;
    path[n] = 0;
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, "http_server");
    if (access(path, X_OK) != 0) {
        printf("skipped: examples/http_server was not built: install libhttp-parser-dev "
               "(scripts/install-deps.sh does)\n");
        return -DEMO_SKIPPED;
    }
    struct demo_child *c = demo_new_child("http", (uid_t)-1, (gid_t)-1);
    if (!c) return -1;
    char delay[16];
    snprintf(delay, sizeof delay, "%d", delay_ms);
    char *argv[] = {path, "0", delay, NULL};
    int fd;
    c->stop_sig = SIGTERM; /* its graceful stop */
    c->pid = demo_spawn(argv, NULL, &fd, 0, 0, 0, SIGTERM);
    if (c->pid < 0) return -1;
    /* Its first line says where it listens. */
    FILE *f = fdopen(fd, "r");
    char line[128] = "";
    int port = -1;
    if (!f || !fgets(line, sizeof line, f) ||
        sscanf(line, "listening on 127.0.0.1:%d", &port) != 1) {
        fprintf(stderr, "demo: %s did not say where it listens\n", path);
        port = -1;
    }
    if (f) fclose(f);
    return port;
}

/* ---- PostgreSQL ----------------------------------------------------------- */

/* Start PostgreSQL on a free loopback port, in a temporary folder, with
 * trust authentication for the superuser "tulip". initdb is slow on a
 * loaded machine, so the first run keeps its fresh cluster as a template
 * in the build tree (the pg tests share it) and later runs copy it.
 * Fills conninfo; returns 0, -DEMO_SKIPPED (one line printed), or -1. */
static inline int demo_pg_start(char *conninfo, size_t len)
{
    char bin[128] = "";
    const char *e = getenv("TULIP_PG_BIN");
    if (e) {
        snprintf(bin, sizeof bin, "%s", e);
    } else { /* Debian's newest server */
        DIR *dir = opendir("/usr/lib/postgresql");
        int best = -1;
        struct dirent *de;
        while (dir && (de = readdir(dir)))
            if (atoi(de->d_name) > best) best = atoi(de->d_name);
        if (dir) closedir(dir);
        if (best > 0) snprintf(bin, sizeof bin, "/usr/lib/postgresql/%d/bin", best);
    }
    char initdb[192], postgres[192];
    snprintf(initdb, sizeof initdb, "%s/initdb", bin);
    snprintf(postgres, sizeof postgres, "%s/postgres", bin);
    if (!bin[0] || access(initdb, X_OK) != 0 || access(postgres, X_OK) != 0) {
        printf("skipped: this part needs a PostgreSQL server (initdb, postgres): install "
               "postgresql (scripts/install-deps.sh does)\n");
        return -DEMO_SKIPPED;
    }
    int drop = geteuid() == 0;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    if (drop) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            printf("skipped: running as root and there is no postgres user to run the "
                   "server as: install postgresql (scripts/install-deps.sh does)\n");
            return -DEMO_SKIPPED;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    struct demo_child *c = demo_new_child("pg", uid, gid);
    if (!c) return -1;
    char data[128], log[128], sh[3072];
    snprintf(data, sizeof data, "%s/data", c->dir);
    snprintf(log, sizeof log, "%s/log", c->dir);
    /* The template: <build>/pg-template-w1-<bin, '/' as '-'>. */
    char tmpl[512];
    ssize_t n = readlink("/proc/self/exe", tmpl, 256);
    if (n <= 0) return -1;
    tmpl[n] = 0;
    for (int k = 0; k < 2; k++) { /* <build>/examples/<name> -> <build> */
        char *s = strrchr(tmpl, '/');
        if (s) *s = 0;
    }
    size_t l = strlen(tmpl);
    l += (size_t)snprintf(tmpl + l, sizeof tmpl - l, "/pg-template-w1");
    for (const char *q = bin; *q && l + 2 < sizeof tmpl; q++, l++) tmpl[l] = *q == '/' ? '-' : *q;
    tmpl[l] = 0;
    char probe[600];
    snprintf(probe, sizeof probe, "%s/PG_VERSION", tmpl);
    struct stat sb;
    if (stat(probe, &sb) == 0) {
        snprintf(sh, sizeof sh, "cp -a '%s' '%s'", tmpl, data);
    } else {
        printf("(first run: initdb makes a database cluster; later runs copy it)\n");
        char *argv[] = {initdb, "-D", data, "-U", "tulip", "-A", "trust", "-E", "UTF8",
                        "--no-sync", "--wal-segsize=1", "--no-instructions", NULL};
        pid_t pid = demo_spawn(argv, log, NULL, drop, uid, gid, SIGKILL);
        if (pid < 0 || demo_wait(pid, 120) != 0) {
            if (demo_interrupted) return -1;
            fprintf(stderr, "demo: initdb failed\n");
            demo_show_log(log);
            return -1;
        }
        /* Keep it for the next runs; of two runs racing, one rename wins. */
        snprintf(sh, sizeof sh,
                 "cp -a '%s' '%s.%d' && { mv -T '%s.%d' '%s' 2>/dev/null || rm -rf '%s.%d'; }",
                 data, tmpl, (int)getpid(), tmpl, (int)getpid(), tmpl, tmpl, (int)getpid());
    }
    char *shv[] = {"/bin/sh", "-c", sh, NULL};
    pid_t pid = demo_spawn(shv, "/dev/null", NULL, 0, 0, 0, SIGKILL);
    if (pid < 0 || demo_wait(pid, 120) != 0) {
        if (demo_interrupted) return -1;
        fprintf(stderr, "demo: could not copy the database cluster\n");
        return -1;
    }
    int port = demo_free_port();
    if (port <= 0) return -1;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    char *argv[] = {postgres, "-D", data, "-k", c->dir, "-p", portstr, "-F",
                    "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=20",
                    "-c", "shared_buffers=8MB", NULL};
    c->stop_sig = SIGINT; /* postgres: fast shutdown */
    c->pid = demo_spawn(argv, log, NULL, drop, uid, gid, SIGQUIT);
    if (c->pid < 0 || demo_wait_port(c->pid, port) != 0) {
        if (demo_interrupted) return -1;
        fprintf(stderr, "demo: postgres did not start\n");
        demo_show_log(log);
        return -1;
    }
    snprintf(conninfo, len,
             "host=127.0.0.1 port=%d user=tulip dbname=postgres sslmode=disable "
             "gssencmode=disable connect_timeout=10",
             port);
    return 0;
}

#endif /* TULIP_DEMO_SERVERS_H */
