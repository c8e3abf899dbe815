/* A subprocess pipeline: asyncio.create_subprocess_exec, in C.
 *
 *     # 1. seq 1 100000 | sort -rn | head -3: three children, two OS pipes
 *     r, w = os.pipe(); r2, w2 = os.pipe()
 *     seq  = await create_subprocess_exec("seq", "1", "100000", stdout=w)
 *     sort = await create_subprocess_exec("sort", "-rn", stdin=r, stdout=w2)
 *     head = await create_subprocess_exec("head", "-3", stdin=r2, stdout=PIPE)
 *     out, _ = await head.communicate()
 *
 *     # 2. producer -> this program -> consumer, through streams
 *     seq = await create_subprocess_exec("seq", "1", "100000", stdout=PIPE)
 *     wc  = await create_subprocess_exec("wc", "-l", stdin=PIPE, stdout=PIPE)
 *     async for line in seq.stdout:
 *         if int(line) % 7 == 0:
 *             wc.stdin.write(line); await wc.stdin.drain()
 *     wc.stdin.close()
 *     print(await wc.stdout.read())
 *
 *     # 3. a deadline that kills the child (Trio's run_process)
 *     with trio.fail_after(0.2): await trio.run_process(["sleep", "1000"])
 *
 * In C every child is a tl_process: spawned with posix_spawn, watched
 * through a pidfd, reaped by tl_process_wait / tl_process_close.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tulip.h>

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void show_status(const char *name, int st)
{
    if (st < 0)
        printf("  %-5s error %s\n", name, tl_strerror(st));
    else if (TL_PROCESS_TERMSIG(st))
        printf("  %-5s killed by SIG%s\n", name,
               sigabbrev_np(TL_PROCESS_TERMSIG(st)));
    else
        printf("  %-5s exit %d\n", name, TL_PROCESS_EXITCODE(st));
}

/* 1. Three children connected by two pipes; tulip only reads the end. */
static int three_children(void)
{
    puts("1. seq 1 100000 | sort -rn | head -3  (three tl_process, two pipes)");
    puts("  # Python: seq = await create_subprocess_exec(\"seq\", \"1\", \"100000\", stdout=w)");
    puts("  #         ... sort (stdin=r, stdout=w2), head (stdin=r2, stdout=PIPE)");
    puts("  #         out, _ = await head.communicate()");
    puts("  # C:      tl_process_spawn(&seq, &(tl_process_opts){.argv = ..., .stdout_mode = TL_PROCESS_FD, .stdout_fd = a[1]})");
    puts("  #         ... tl_process_communicate(head, NULL, 0, &res)");
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) < 0) return -errno;
    if (pipe2(b, O_CLOEXEC) < 0) {
        close(a[0]);
        close(a[1]);
        return -errno;
    }
    tl_process *seq = NULL, *sort = NULL, *head = NULL;
    int rc = tl_process_spawn(&seq, &(tl_process_opts){
                                        .argv = ARGV("seq", "1", "100000"),
                                        .stdout_mode = TL_PROCESS_FD,
                                        .stdout_fd = a[1]});
    if (rc == 0)
        rc = tl_process_spawn(&sort, &(tl_process_opts){
                                         .argv = ARGV("sort", "-rn"),
                                         .stdin_mode = TL_PROCESS_FD,
                                         .stdin_fd = a[0],
                                         .stdout_mode = TL_PROCESS_FD,
                                         .stdout_fd = b[1]});
    if (rc == 0)
        rc = tl_process_spawn(&head, &(tl_process_opts){
                                         .argv = ARGV("head", "-3"),
                                         .stdin_mode = TL_PROCESS_FD,
                                         .stdin_fd = b[0],
                                         .stdout_mode = TL_PROCESS_PIPE});
    /* The children hold their ends now: ours must go, or sort and head
     * would never read end of file. */
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    if (rc == 0) {
        tl_process_result res;
        rc = tl_process_communicate(head, NULL, 0, &res);
        if (rc >= 0) printf("%s", res.out);
        tl_process_result_free(&res);
    }
    int st_seq = seq ? tl_process_wait(seq) : rc;
    int st_sort = sort ? tl_process_wait(sort) : rc;
    int st_head = head ? tl_process_close(head) : rc;
    show_status("seq", st_seq);
    show_status("sort", st_sort);
    show_status("head", st_head);
    tl_process_close(seq);
    tl_process_close(sort);
    return rc < 0 ? rc : st_head;
}

/* 2. producer -> tulip -> consumer: lines out of seq, the multiples of 7
 * into wc, through streams with backpressure. */
struct pump {
    tl_process *seq, *wc;
    long kept;
};

static int pump(void *arg)
{
    struct pump *p = arg;
    tl_stream *in = tl_process_stdin(p->wc);
    tl_gen *lines;
    const char *line;
    int rc = tl_stream_lines(&lines, tl_process_stdout(p->seq));
    if (rc < 0) return rc;
    int lrc = 0;
    TL_GEN_FOREACH(lines, line, &lrc) {            /* async for line in ... */
        if (atol(line) % 7) continue;
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%s\n", line);
        tl_stream_write(in, buf, (size_t)n);       /* wc.stdin.write(line) */
        if ((rc = tl_stream_drain(in)) < 0) break; /* await drain() */
        p->kept++;
    }
    int crc = tl_gen_close(lines);
    if (rc == 0) rc = lrc < 0 ? lrc : crc;
    tl_stream_write_eof(in);                       /* wc.stdin.close() */
    return rc;
}

static int through_tulip(void)
{
    puts("\n2. seq 1 100000 -> tulip (keeps the multiples of 7) -> wc -l");
    puts("  # Python: async for line in seq.stdout:");
    puts("  #             if int(line) % 7 == 0: wc.stdin.write(line); await wc.stdin.drain()");
    puts("  # C:      TL_GEN_FOREACH(lines, line, &rc) { ... tl_stream_write(in, ...); tl_stream_drain(in); }");
    struct pump p = {0};
    int rc = tl_process_spawn(&p.seq, &(tl_process_opts){
                                          .argv = ARGV("seq", "1", "100000"),
                                          .stdout_mode = TL_PROCESS_PIPE});
    if (rc < 0) return rc;
    rc = tl_process_spawn(&p.wc, &(tl_process_opts){
                                     .argv = ARGV("wc", "-l"),
                                     .stdin_mode = TL_PROCESS_PIPE,
                                     .stdout_mode = TL_PROCESS_PIPE});
    if (rc < 0) {
        tl_process_close(p.seq);
        return rc;
    }
    tl_task t;
    char out[64] = "";
    rc = tl_spawn(&t, pump, &p);
    if (rc == 0) {
        /* Meanwhile, read wc's answer: it comes once its stdin ends. */
        ssize_t n = tl_stream_read(tl_process_stdout(p.wc), out,
                                   sizeof out - 1);
        if (n > 0) out[n] = 0;
        int prc = 0;
        rc = tl_join(t, &prc);
        if (rc == 0) rc = prc;
    }
    printf("  tulip passed on %ld lines; wc -l says %s", p.kept, out);
    show_status("seq", tl_process_wait(p.seq));
    int st = tl_process_wait(p.wc);
    show_status("wc", st);
    tl_process_close(p.seq);
    tl_process_close(p.wc);
    if (rc < 0) return rc;
    return atol(out) == p.kept && p.kept == 100000 / 7 ? st : -EIO;
}

/* 3. A deadline around tl_process_run kills and reaps the child. */
static int deadline(void)
{
    puts("\n3. sleep 1000 under a 0.2 s deadline (tl_process_run)");
    puts("  # Python: with trio.fail_after(0.2): await trio.run_process([\"sleep\", \"1000\"])");
    puts("  # C:      TL_WITH_TIMEOUT(0.2, &rc) rc = tl_process_run(&opts, NULL, 0, NULL);");
    double t0 = tl_now();
    int rc;
    TL_WITH_TIMEOUT(0.2, &rc) {
        rc = tl_process_run(&(tl_process_opts){.argv = ARGV("sleep", "1000")},
                            NULL, 0, NULL);
    }
    siginfo_t si;
    int left = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
    printf("  [%.2f s] -> -%s; children left: %s\n", tl_now() - t0,
           tl_errname(rc), left ? "some" : "none");
    return rc == -ETIMEDOUT && !left ? 0 : -EIO;
}

static int main_task(void *arg)
{
    (void)arg;
    int rc = three_children();
    if (rc != 0) return rc < 0 ? rc : -EIO;
    if ((rc = through_tulip()) != 0) return rc < 0 ? rc : -EIO;
    return deadline();
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = tl_run(main_task, NULL);
    if (rc != 0) printf("pipeline: %s\n", tl_strerror(rc));
    return rc == 0 ? 0 : 1;
}
