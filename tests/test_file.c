/* Files (tulip/file.h): open, stat, fsync, reads and writes of regular
 * files off the loop's thread (io_uring requests, or the thread pool on
 * epoll), cancellation at each suspension point (nothing lost, no late
 * write, no fd leaked), and the conveniences: whole-file read, atomic
 * write, lines. Runs on each backend. Files live in a fresh directory
 * under the temporary directory. */
#include "helpers.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* Entries of dir other than . and .. */
static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static char dir[256];

static void make_dir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tulip-file-XXXXXX", t && *t ? t : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_dir(void)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) < 0) rmdir(p);
    }
    closedir(d);
    rmdir(dir);
}

static const char *at(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put(const char *name, const char *s)
{
    FILE *f = fopen(at(name), "w");
    cr_assert_not_null(f);
    fputs(s, f);
    fclose(f);
}

static char *get(const char *name)
{
    static char buf[4096];
    FILE *f = fopen(at(name), "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- each call ---------------------------------------------------------- */

static int calls_main(void *arg)
{
    (void)arg;
    int fds = tl_test_count_fds();
    int fd = tl_open(at("a"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "%s", tl_strerror(fd));
    cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    cr_expect_eq(tl_write(fd, "hello ", 6), 6);
    cr_expect_eq(tl_pwrite(fd, "world", 5, 6), 5);
    struct iovec v[2] = {{"!", 1}, {"\n", 1}};
    cr_expect_eq(tl_pwrite(fd, "", 0, 11), 0);
    cr_expect_eq(lseek(fd, 11, SEEK_SET), 11);
    cr_expect_eq(tl_writev(fd, v, 2), 2);
    cr_expect_eq(tl_fsync(fd), 0);
    cr_expect_eq(tl_fdatasync(fd), 0);
    struct stat st;
    cr_expect_eq(tl_fstat(fd, &st), 0);
    cr_expect_eq(st.st_size, 13);
    cr_expect(S_ISREG(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0600);
    char b[32] = {0};
    cr_expect_eq(tl_pread(fd, b, sizeof b, 0), 13);
    cr_expect_str_eq(b, "hello world!\n");
    cr_expect_eq(lseek(fd, 0, SEEK_SET), 0);
    memset(b, 0, sizeof b);
    cr_expect_eq(tl_read(fd, b, 5), 5);
    char c1[4] = {0}, c2[8] = {0};
    struct iovec r[2] = {{c1, 3}, {c2, 7}};
    cr_expect_eq(tl_readv(fd, r, 2), 8);
    cr_expect_str_eq(c1, " wo");
    cr_expect_eq(memcmp(c2, "rld!\n", 5), 0);
    cr_expect_eq(tl_read(fd, b, sizeof b), 0); /* end of file */
    cr_expect_eq(tl_close(fd), 0);

    struct stat st2;
    cr_expect_eq(tl_stat(at("a"), &st2), 0);
    cr_expect_eq(st2.st_ino, st.st_ino);
    cr_expect_eq(st2.st_size, 13);
    cr_expect_eq(symlink(at("a"), at("link")), 0);
    cr_expect_eq(tl_fstatat(AT_FDCWD, at("link"), &st2, AT_SYMLINK_NOFOLLOW),
                 0);
    cr_expect(S_ISLNK(st2.st_mode));
    int dfd = tl_open(dir, O_RDONLY | O_DIRECTORY, 0);
    cr_assert_geq(dfd, 0);
    cr_expect_eq(tl_fstatat(dfd, "a", &st2, 0), 0);
    cr_expect_eq(st2.st_size, 13);
    int fd2 = tl_openat(dfd, "a", O_RDONLY, 0);
    cr_expect_geq(fd2, 0);
    cr_expect_eq(tl_pread(fd2, b, 5, 6), 5);
    cr_expect_eq(memcmp(b, "world", 5), 0);
    cr_expect_eq(tl_close(fd2), 0);
    cr_expect_eq(tl_fsync(dfd), 0);
    cr_expect_eq(tl_close(dfd), 0);
    cr_expect_eq(tl_test_count_fds(), fds);
    return 0;
}

Test(file, open_read_write_stat_fsync_close, .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(calls_main, NULL), 0);
    rm_dir();
}

static int errors_main(void *arg)
{
    (void)arg;
    int fds = tl_test_count_fds();
    struct stat st;
    cr_expect_eq(tl_open(at("missing"), O_RDONLY, 0), -ENOENT);
    cr_expect_eq(tl_open(at("missing/x"), O_RDONLY, 0), -ENOENT);
    put("here", "x");
    cr_expect_eq(tl_open(at("here"), O_RDWR | O_CREAT | O_EXCL, 0600),
                 -EEXIST);
    cr_expect_eq(tl_open(at("here/x"), O_RDONLY, 0), -ENOTDIR);
    cr_expect_eq(tl_open(dir, O_WRONLY, 0), -EISDIR);
    cr_expect_eq(tl_open(NULL, O_RDONLY, 0), -EINVAL);
    cr_expect_eq(tl_stat(at("missing"), &st), -ENOENT);
    cr_expect_eq(tl_stat(NULL, &st), -EINVAL);
    cr_expect_eq(tl_stat(at("here"), NULL), -EINVAL);
    cr_expect_eq(tl_fstatat(AT_FDCWD, at("here"), &st, 0x40000000), -EINVAL);
    cr_expect_eq(tl_fstat(-1, &st), -EBADF);
    cr_expect_eq(tl_fstat(999, &st), -EBADF);
    cr_expect_eq(tl_fsync(999), -EBADF);
    int fd = tl_open(dir, O_RDONLY | O_DIRECTORY, 0);
    char b[8];
    cr_expect_eq(tl_read(fd, b, sizeof b), -EISDIR);
    TL_IGNORE(tl_close(fd));
    fd = tl_open(at("here"), O_RDONLY, 0);
    cr_expect_eq(tl_write(fd, "x", 1), -EBADF); /* not open for writing */
    cr_expect_eq(tl_pread(fd, b, 1, -1), -EINVAL);
    TL_IGNORE(tl_close(fd));

    char *data = (char *)1;
    size_t len = 7;
    int rc = tl_file_read_all(at("missing"), &data, &len, 0);
    cr_expect_eq(rc, -ENOENT);
    cr_expect_null(data);
    cr_expect_eq(len, 0);
    const char *m = tl_fail_message(-ENOENT);
    cr_expect(m && strstr(m, "missing"), "%s", m ? m : "(none)");
    cr_expect_eq(tl_file_read_all(dir, &data, NULL, 0), -EISDIR);
    put("big", "0123456789");
    cr_expect_eq(tl_file_read_all(at("big"), &data, NULL, 9), -EFBIG);
    cr_expect_null(data);
    cr_expect_eq(tl_file_read_all(at("big"), &data, &len, 10), 0);
    cr_expect_eq(len, 10);
    free(data);
    cr_expect_eq(tl_file_read_all(NULL, &data, NULL, 0), -EINVAL);
    cr_expect_eq(tl_file_write_atomic(NULL, "x", 1, 0644), -EINVAL);
    cr_expect_eq(tl_file_write_atomic(at("x"), NULL, 1, 0644), -EINVAL);
    cr_expect_eq(tl_file_write_atomic(at("nodir/x"), "x", 1, 0644), -ENOENT);
    cr_expect_eq(tl_file_write_atomic(at("dir/"), "x", 1, 0644), -EISDIR);
    cr_expect_eq(tl_test_count_fds(), fds);
    return 0;
}

Test(file, errors, .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(errors_main, NULL), 0);
    struct stat st;
    cr_expect_eq(tl_stat("/", &st), TL_ENOTASK);
    rm_dir();
}

/* ---- off the loop's thread ---------------------------------------------- */

static int ran;

static int bystander(void *arg)
{
    (void)arg;
    ran = 1;
    return 0;
}

static int offloop_main(void *arg)
{
    (void)arg;
    put("f", "some data");
    int fd = tl_open(at("f"), O_RDWR, 0);
    cr_assert_geq(fd, 0);
    /* Each file call suspends the caller (the disk works elsewhere), so a
     * ready task runs before it returns. Inline on the loop's thread it
     * would not. */
    char b[16];
    for (int i = 0; i < 6; i++) {
        ran = 0;
        tl_task t = tl_test_spawn(bystander, NULL);
        ssize_t n = 0;
        switch (i) {
        case 0: n = tl_pread(fd, b, sizeof b, 0); break;
        case 1: n = tl_pwrite(fd, "S", 1, 0); break;
        case 2: n = tl_read(fd, b, sizeof b); break;
        case 3: n = tl_write(fd, "x", 1); break;
        case 4: n = tl_fsync(fd); break;
        case 5: {
            struct stat st;
            n = tl_fstat(fd, &st);
            break;
        }
        }
        cr_expect_geq(n, 0, "call %d: %s", i, tl_strerror((int)n));
        cr_expect_eq(ran, 1, "call %d ran on the loop's thread", i);
        cr_expect_eq(tl_test_join(t), 0);
    }
    TL_IGNORE(tl_close(fd));
    return 0;
}

Test(file, file_calls_never_block_the_loop, .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(offloop_main, NULL), 0);
    rm_dir();
}

/* ---- cancellation ------------------------------------------------------- */

#define POISON 0x5a

struct reader {
    int fd;
    char *buf;      /* heap: freed right after the join */
    size_t len;
    int64_t off;    /* -1: the file position */
    ssize_t n;
};

static int reader_task(void *arg)
{
    struct reader *r = arg;
    r->n = r->off < 0 ? tl_read(r->fd, r->buf, r->len)
                      : tl_pread(r->fd, r->buf, r->len, (off_t)r->off);
    return 0;
}

static int cancel_read_main(void *arg)
{
    (void)arg;
    enum { SZ = 256 * 1024 };
    char *data = malloc(SZ);
    for (int i = 0; i < SZ; i++) data[i] = (char)(i * 7 + 1);
    int fd = tl_open(at("r"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    ssize_t w = tl_pwrite(fd, data, SZ, 0);
    cr_assert_eq(w, SZ);
    int fds = tl_test_count_fds();
    int cancelled = 0, completed = 0;
    off_t pos = 0;
    for (int round = 0; round < 60; round++) {
        struct reader r = {.fd = fd, .len = 4096,
                           .off = round % 2 ? -1 : round * 1000};
        r.buf = malloc(r.len);
        memset(r.buf, POISON, r.len);
        tl_task t = tl_test_spawn(reader_task, &r);
        for (int k = 0; k < round % 5; k++) TL_IGNORE(tl_yield());
        TL_IGNORE(tl_cancel(t));
        cr_expect_eq(tl_test_join(t), 0);
        size_t from = r.off < 0 ? (size_t)pos : (size_t)r.off;
        if (r.n == -ECANCELED) {
            cancelled++;
            for (size_t i = 0; i < r.len; i++)
                if ((unsigned char)r.buf[i] != POISON) {
                    cr_expect(0, "round %d: a cancelled read wrote byte %zu",
                            round, i);
                    break;
                }
        } else {
            completed++;
            cr_expect_eq(r.n, 4096, "round %d: %s", round,
                         tl_strerror((int)r.n));
            if (r.n > 0)
                cr_expect_eq(memcmp(r.buf, data + from, (size_t)r.n), 0,
                             "round %d: wrong bytes", round);
            if (r.off < 0 && r.n > 0) pos += r.n;
        }
        /* The file position moved exactly by what was returned: nothing
         * was read and dropped. */
        cr_expect_eq(lseek(fd, 0, SEEK_CUR), pos, "round %d", round);
        free(r.buf); /* a late write would be a use after free (ASan) */
    }
    cr_expect_eq(cancelled + completed, 60);
    cr_expect_gt(cancelled, 0);
    cr_expect_eq(tl_test_count_fds(), fds);
    TL_IGNORE(tl_close(fd));
    free(data);
    return 0;
}

Test(file, cancelled_reads_lose_nothing_and_never_write_late, .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(cancel_read_main, NULL), 0);
    rm_dir();
}

struct opener {
    int which;
    int rc;
};

static int opener_task(void *arg)
{
    struct opener *o = arg;
    struct stat st;
    switch (o->which) {
    case 0:
        o->rc = tl_open(at("o"), O_RDONLY, 0);
        if (o->rc >= 0) { /* completed wins: ours to close */
            TL_IGNORE(tl_close(o->rc));
            o->rc = 0;
        }
        break;
    case 1:
        memset(&st, POISON, sizeof st);
        o->rc = tl_stat(at("o"), &st);
        if (o->rc == -ECANCELED) {
            const unsigned char *p = (const unsigned char *)&st;
            for (size_t i = 0; i < sizeof st; i++)
                if (p[i] != POISON) {
                    cr_expect(0, "a cancelled stat wrote its struct");
                    break;
                }
        }
        break;
    case 2: {
        int fd = open(at("o"), O_RDWR | O_CLOEXEC);
        o->rc = tl_fsync(fd);
        close(fd);
        break;
    }
    }
    return 0;
}

static int cancel_calls_main(void *arg)
{
    (void)arg;
    put("o", "x");
    int fds = tl_test_count_fds();
    int cancelled = 0;
    for (int round = 0; round < 60; round++) {
        struct opener o = {.which = round % 3};
        tl_task t = tl_test_spawn(opener_task, &o);
        for (int k = 0; k < (round / 3) % 5; k++) TL_IGNORE(tl_yield());
        TL_IGNORE(tl_cancel(t));
        cr_expect_eq(tl_test_join(t), 0);
        cr_expect(o.rc == 0 || o.rc == -ECANCELED, "round %d: %s", round,
                  tl_strerror(o.rc));
        cancelled += o.rc == -ECANCELED;
    }
    cr_expect_gt(cancelled, 0);
    cr_expect_eq(tl_test_count_fds(), fds);
    return 0;
}

Test(file, cancelled_open_stat_fsync_leak_nothing, .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(cancel_calls_main, NULL), 0);
    rm_dir();
}

/* ---- whole files -------------------------------------------------------- */

static int whole_main(void *arg)
{
    (void)arg;
    int fds = tl_test_count_fds();
    size_t n = 300 * 1000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
    cr_expect_eq(tl_file_write_atomic(at("w"), big, n, 0640), 0);
    struct stat st;
    cr_expect_eq(tl_stat(at("w"), &st), 0);
    cr_expect_eq(st.st_size, (off_t)n);
    char *data;
    size_t len;
    cr_expect_eq(tl_file_read_all(at("w"), &data, &len, 0), 0);
    cr_expect_eq(len, n);
    cr_expect_eq(memcmp(data, big, n), 0);
    cr_expect_eq(data[len], '\0');
    free(data);
    /* Replace it; then an empty one; a relative path works too. */
    cr_expect_eq(tl_file_write_atomic(at("w"), "new", 3, 0640), 0);
    cr_expect_str_eq(get("w"), "new");
    cr_expect_eq(tl_file_write_atomic(at("w"), NULL, 0, 0640), 0);
    cr_expect_eq(tl_file_read_all(at("w"), &data, &len, 0), 0);
    cr_expect_eq(len, 0);
    cr_expect_str_eq(data, "");
    free(data);
    cr_expect_eq(count_entries(dir), 1); /* no temporary file left */
    /* A file that grows beyond what stat said still reads whole (a
     * pipe-like source: /proc files say size 0). */
    cr_expect_eq(tl_file_read_all("/proc/self/status", &data, &len, 0), 0);
    cr_expect(len > 0 && strstr(data, "Name:"));
    free(data);
    free(big);
    cr_expect_eq(tl_test_count_fds(), fds);
    return 0;
}

Test(file, read_all_and_write_atomic, .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(whole_main, NULL), 0);
    rm_dir();
}

/* The rename fails (the target is a non-empty directory): the old target
 * stays, the temporary file goes. */
static int atomic_fail_main(void *arg)
{
    (void)arg;
    cr_assert_eq(mkdir(at("d"), 0700), 0);
    put("d/keep", "old");
    int rc = tl_file_write_atomic(at("d"), "new", 3, 0644);
    cr_expect(rc == -EISDIR || rc == -ENOTEMPTY || rc == -EEXIST, "%s",
              tl_errname(rc));
    const char *m = tl_fail_message(rc);
    cr_expect(m && strstr(m, at("d")), "%s", m ? m : "(none)");
    cr_expect_str_eq(get("d/keep"), "old");
    cr_expect_eq(count_entries(dir), 1);
    return 0;
}

Test(file, atomic_write_that_fails_leaves_the_target, .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(atomic_fail_main, NULL), 0);
    rm_dir();
}

/* A write fails (the file size limit): the old file is intact. In a
 * child, since the limit is per process. */
static int fsize_main(void *arg)
{
    (void)arg;
    static char big[5000];
    memset(big, 'n', sizeof big);
    int rc = tl_file_write_atomic(at("old"), big, sizeof big, 0644);
    printf("rc=%s\n", tl_errname(rc));
    return 0;
}

static void fsize_child_run(void *arg)
{
    (void)arg;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 1000, .rlim_max = RLIM_INFINITY};
    setrlimit(RLIMIT_FSIZE, &rl);
    /* On epoll: the write runs on a pool thread, which the process's
     * RLIMIT_FSIZE covers; io_uring's kernel workers here were seen to
     * write past it, and the failure path does not depend on the backend. */
    tl_config c = {.backend = "epoll"};
    (void)tl_run_with(&c, fsize_main, NULL);
    fflush(stdout);
}

Test(file, atomic_write_whose_write_fails_keeps_the_old_file, .timeout = 30)
{
    make_dir();
    put("old", "old contents");
    char out[4096];
    int st = tl_test_child(fsize_child_run, NULL, out, sizeof out);
    TL_ASSERT_EXITED_OK(st, out);
    TL_EXPECT_OUT(out, "rc=EFBIG");
    cr_expect_str_eq(get("old"), "old contents");
    cr_expect_eq(count_entries(dir), 1, "a temporary file was left");
    rm_dir();
}

struct writer {
    const char *data;
    size_t len;
    int rc;
};

static int writer_task(void *arg)
{
    struct writer *w = arg;
    w->rc = tl_file_write_atomic(at("c"), w->data, w->len, 0600);
    return 0;
}

static int atomic_cancel_main(void *arg)
{
    (void)arg;
    put("c", "v0");
    int fds = tl_test_count_fds();
    char cur[16] = "v0", want[16];
    int cancelled = 0, done = 0;
    for (int round = 1; round <= 80; round++) {
        snprintf(want, sizeof want, "v%d", round);
        struct writer w = {.data = want, .len = strlen(want)};
        tl_task t = tl_test_spawn(writer_task, &w);
        for (int k = 0; k < round % 20; k++) TL_IGNORE(tl_yield());
        if (round % 8) TL_IGNORE(tl_cancel(t)); /* else it completes */
        cr_expect_eq(tl_test_join(t), 0);
        const char *now = get("c");
        if (w.rc == 0) {
            done++;
            cr_expect_str_eq(now, want, "round %d", round);
            strcpy(cur, want);
        } else {
            cr_expect_eq(w.rc, -ECANCELED, "round %d: %s", round,
                         tl_errname(w.rc));
            cancelled++;
            cr_expect_str_eq(now, cur, "round %d: old file changed", round);
        }
        cr_expect_eq(count_entries(dir), 1, "round %d: temp left", round);
    }
    cr_expect_gt(cancelled, 0);
    cr_expect_gt(done, 0);
    cr_expect_eq(tl_test_count_fds(), fds);
    return 0;
}

Test(file, atomic_write_cancelled_at_each_step_is_all_or_nothing,
     .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(atomic_cancel_main, NULL), 0);
    rm_dir();
}

/* ---- lines -------------------------------------------------------------- */

#define NLINES (TULIP_TEST_SANITIZED ? 4000 : 20000)

static int lines_main(void *arg)
{
    (void)arg;
    int fds = tl_test_count_fds();
    put("l", "a\nbb\r\n\nlast");
    tl_gen *g;
    cr_assert_eq(tl_file_lines(&g, at("l")), 0);
    const char *want[] = {"a", "bb", "", "last"};
    int k = 0, rc;
    const char *line;
    TL_GEN_FOREACH(g, line, &rc)
    {
        cr_expect(k < 4 && !strcmp(line, want[k]), "line %d: '%s'", k, line);
        k++;
    }
    cr_expect_eq(rc, 0);
    cr_expect_eq(k, 4);
    cr_expect_eq(tl_gen_close(g), 0);

    /* Many lines across read boundaries. */
    char pad[100];
    memset(pad, 'p', sizeof pad);
    FILE *f = fopen(at("many"), "w");
    for (int i = 0; i < NLINES; i++) fprintf(f, "%d:%.*s\n", i, i % 97, pad);
    fclose(f);
    cr_assert_eq(tl_file_lines(&g, at("many")), 0);
    k = 0;
    TL_GEN_FOREACH(g, line, &rc)
    {
        char exp[128];
        snprintf(exp, sizeof exp, "%d:%.*s", k, k % 97, pad);
        if (strcmp(line, exp)) {
            cr_expect(0, "line %d: '%s'", k, line);
            break;
        }
        k++;
    }
    cr_expect_eq(rc, 0);
    cr_expect_eq(k, NLINES);
    cr_expect_eq(tl_gen_close(g), 0);

    /* Closed early: the file is closed too. */
    cr_assert_eq(tl_file_lines(&g, at("many")), 0);
    void *v;
    cr_expect_eq(tl_gen_next(g, &v), 0);
    cr_expect_str_eq((char *)v, "0:");
    cr_expect_eq(tl_gen_close(g), 0);

    /* Missing file; a line too long. */
    cr_assert_eq(tl_file_lines(&g, at("missing")), 0);
    cr_expect_eq(tl_gen_next(g, &v), -ENOENT);
    const char *m = tl_fail_message(-ENOENT);
    cr_expect(m && strstr(m, "missing"), "%s", m ? m : "(none)");
    cr_expect_eq(tl_gen_close(g), 0);
    f = fopen(at("long"), "w");
    for (int i = 0; i < 3 * 1024 * 1024 / 64; i++)
        fprintf(f, "%.*s", 64, pad);
    fclose(f);
    cr_assert_eq(tl_file_lines(&g, at("long")), 0);
    cr_expect_eq(tl_gen_next(g, &v), -EMSGSIZE);
    cr_expect_eq(tl_gen_close(g), 0);
    cr_expect_eq(tl_file_lines(NULL, "x"), -EINVAL);
    cr_expect_eq(tl_file_lines(&g, NULL), -EINVAL);
    cr_expect_eq(tl_test_count_fds(), fds);
    return 0;
}

Test(file, lines_generator, .timeout = 30)
{
    make_dir();
    cr_expect_eq(tl_run(lines_main, NULL), 0);
    rm_dir();
}
