/* tulip/curl.h — HTTP(S) over libcurl: the seed's httpx in C.
 *
 * Not part of the core: this header belongs to the separate library
 * libtulip-curl (pkg-config tulip-curl; CMake option TULIP_WITH_CURL, on
 * when libcurl is found), which links libtulip and libcurl. It includes
 * <tulip.h> itself.
 *
 *     async with httpx.AsyncClient() as c:  tl_curl *c;
 *         r = await c.get(url)              tl_curl_new(&c, NULL);
 *         print(r.status_code, r.text)      tl_curl_response r;
 *                                           if (tl_curl_get(c, url, &r) == 0)
 *                                               printf("%ld %s\n", r.status, r.body);
 *                                           tl_curl_response_free(&r);
 *                                           tl_curl_close(c);
 *
 * Model. A client (tl_curl) owns one libcurl multi handle, so requests
 * made through it share its connection cache (keep-alive connections are
 * reused, HTTP/2 requests to one host are multiplexed on one connection)
 * and its DNS cache. libcurl does HTTP, TLS and the resolving (its own
 * resolver thread); tulip only waits: libcurl tells the client which
 * sockets to watch (a persistent fd watcher each, tl_fd_watch_new) and
 * when its timer is due (a driver task per client sleeps until then).
 * Each call suspends only the calling task and is a cancellation point:
 * timeouts come from scopes around it (TL_WITH_TIMEOUT), and a cancelled
 * or timed-out call takes its transfer out of the multi handle before it
 * returns, so nothing of it runs afterwards (its connection is closed if
 * it was mid-response, never handed to another request half-read).
 *
 * At most `max_concurrent` transfers of one client run at once; further
 * calls wait their turn (first come, first served) and may be cancelled
 * while they wait. An open stream holds its turn until it is closed.
 *
 * HTTP statuses are not errors: a 404 is a response with status 404.
 * Errors are negative codes, with libcurl's message attached by tl_fail
 * ("curl: " and its error buffer, which names the address and ends with
 * curl_easy_strerror's words; those words alone when the buffer is
 * empty): read it with tl_fail_message(rc).
 *   -ECONNREFUSED  nothing listens there;
 *   -EHOSTUNREACH  the host name did not resolve (or the proxy's);
 *   -EKEYREJECTED  TLS: the peer's certificate was not verified (unknown
 *                  CA, self-signed, wrong name, expired);
 *   -EPROTO        TLS handshake or protocol failure, bad response;
 *   -ECONNRESET    the connection broke (reset, nothing received, a
 *                  short body);
 *   -ETIMEDOUT     a timeout scope around the call expired (or libcurl's
 *                  own connect timeout);
 *   -ECANCELED     the calling task was cancelled;
 *   -EFBIG         the body exceeded the client's max_body;
 *   -E2BIG         a line exceeded TL_CURL_MAX_LINE (line streams);
 *   -EINVAL        bad arguments, a malformed URL, a scheme other than
 *                  http and https, a CA file that cannot be read;
 *   -ENOMEM;
 *   -EIO           any other libcurl failure (the message says which);
 *   -EXDEV         the client belongs to another thread's loop;
 *   TL_ENOTASK     called outside a task.
 *
 * Threads: a client, its responses' streams and generators belong to the
 * loop of the task that made the client; use them from that loop's tasks
 * only. Loops of several threads may each have clients: libcurl's
 * global init runs once per process, at the first tl_curl_new, on the
 * thread pool (Debian's libcurl is built thread-safe; a program may also
 * call curl_global_init itself first).
 */
#ifndef TULIP_CURL_H
#define TULIP_CURL_H

#include <stddef.h>
#include <tulip.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A client: httpx.AsyncClient (opaque). */
typedef struct tl_curl tl_curl;

/* Options of a client; a zeroed struct (or NULL) gives the defaults. */
typedef struct tl_curl_opts {
    unsigned max_concurrent; /* transfers at once; 0 = 10 */
    size_t max_body;         /* bytes a response body may have; 0 = 64 MiB */
    const char *ca_file;     /* PEM file of the CAs to trust (copied);
                                NULL = the system's store */
    int insecure;            /* non-zero: do not verify TLS peers (tests
                                only: anyone can then read the traffic) */
    int http1_only;          /* non-zero: never negotiate HTTP/2 (by
                                default https uses HTTP/2 when the server
                                offers it, and plain http uses HTTP/1.1) */
    const char *user_agent;  /* copied; NULL = "tulip-curl" */
} tl_curl_opts;

/* Make a client (opts may be NULL). It starts a driver task, named
 * "tl_curl driver", that belongs to the loop of the calling task.
 * Returns 0 and *out; -EINVAL (out NULL), -ENOMEM, -EIO (libcurl could
 * not be initialised; message attached), -ECANCELED, TL_ENOTASK.
 * SUSPENDS only the first time in the process, while libcurl's global
 * init (it loads OpenSSL: ~0.1 s) runs on the thread pool; never after. */
TL_API int tl_curl_new(tl_curl **out, const tl_curl_opts *opts);

/* Close the client (`async with` ends): stop its driver, close its
 * cached connections and free it. Every request must be finished and
 * every stream closed first. Returns 0; -EBUSY (nothing done) while a
 * request or a stream of the client is open; -EXDEV called from another
 * loop; TL_ENOTASK. tl_curl_close(NULL) returns 0. SUSPENDS (briefly,
 * for the driver's end; a cancel does not interrupt it). */
TL_API int tl_curl_close(tl_curl *c);

/* Transfers of the client running now (not those waiting for a turn):
 * at most max_concurrent. Never suspends. */
TL_API unsigned tl_curl_in_flight(const tl_curl *c);

/* One response header, as received (name without the colon). */
typedef struct tl_curl_header {
    char *name;
    char *value;
} tl_curl_header;

/* A response: filled by tl_curl_fetch / _get / _post and owned by the
 * caller, who frees it with tl_curl_response_free (also after a failed
 * call: it is then empty). */
typedef struct tl_curl_response {
    long status;             /* the HTTP status (200, 404, ...) */
    int http_version;        /* 10, 11, 20 or 30 (HTTP/1.0 ... HTTP/3) */
    long new_connections;    /* connections the request opened: 0 when it
                                reused one (keep-alive, HTTP/2) */
    char *body;              /* the body, NUL-terminated (the NUL is not
                                counted; the body may contain NULs) */
    size_t body_len;
    tl_curl_header *headers; /* of the final response (not of redirects
                                or 1xx), in the order received */
    size_t nheaders;
} tl_curl_response;

/* The value of the first header called `name` (case-insensitive), or
 * NULL. The string belongs to the response. Never suspends. */
TL_API const char *tl_curl_header_get(const tl_curl_response *r,
                                      const char *name);

/* Free what a response holds and zero it (r NULL: no-op). */
TL_API void tl_curl_response_free(tl_curl_response *r);

/* A request. Everything it points to is borrowed for the call only (the
 * body too: the caller may free it when the call returns). */
typedef struct tl_curl_request {
    const char *url;                /* http:// or https:// */
    const char *method;             /* NULL: "POST" if body, else "GET" */
    const void *body;               /* NULL: none */
    size_t body_len;
    const char *const *headers;     /* NULL-terminated "Name: value" list,
                                       or NULL */
    int follow_redirects;           /* non-zero: follow up to 10 */
} tl_curl_request;

/* Send a request and read the whole response into *out (status,
 * headers, body). Returns 0 (whatever the status), or a code from the
 * list at the top of this header; on failure *out is left empty (still
 * call tl_curl_response_free, or not: both are fine). SUSPENDS (a
 * cancellation point, also while waiting for a turn). */
TL_API TL_NODISCARD int tl_curl_fetch(tl_curl *c, const tl_curl_request *req,
                                      tl_curl_response *out);

/* GET url: tl_curl_fetch with only the URL set. */
TL_API TL_NODISCARD int tl_curl_get(tl_curl *c, const char *url,
                                    tl_curl_response *out);

/* POST body (len bytes, borrowed until the call returns) to url with
 * the given Content-Type (NULL: application/octet-stream). As
 * tl_curl_fetch. */
TL_API TL_NODISCARD int tl_curl_post(tl_curl *c, const char *url,
                                     const void *body, size_t len,
                                     const char *content_type,
                                     tl_curl_response *out);

/* A streamed response (opaque): `async with client.stream(...) as r`. */
typedef struct tl_curl_stream tl_curl_stream;

/* The longest line tl_curl_stream_lines yields (bytes, without the end
 * of line). */
#define TL_CURL_MAX_LINE (1u << 20)

/* Send a request and wait until the final response's headers are in;
 * the body is then read with tl_curl_stream_read or as lines with
 * tl_curl_stream_lines. Backpressure: libcurl is paused
 * (curl_easy_pause) while at most 64 KiB of body wait for the reader,
 * so a slow reader holds the server back instead of filling memory.
 * The stream holds one of the client's turns until tl_curl_stream_close.
 * Returns 0 and *out; a code from the list at the top of this header
 * (nothing to close then). SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD int tl_curl_stream_open(tl_curl *c,
                                            const tl_curl_request *req,
                                            tl_curl_stream **out);

/* The final response's status, HTTP version and headers (body empty);
 * owned by the stream, valid until tl_curl_stream_close. */
TL_API const tl_curl_response *tl_curl_stream_response(const tl_curl_stream *s);

/* The next piece of the body: *data and *len (> 0) are valid until the
 * next call on s. Returns 1 (a piece), 0 (the body has ended: *len = 0),
 * or a negative code (the transfer failed; from the list at the top;
 * later calls return it again). -EINVAL for NULL arguments. SUSPENDS (a
 * cancellation point: a cancel leaves the stream open and readable). */
TL_API TL_NODISCARD int tl_curl_stream_read(tl_curl_stream *s,
                                            const char **data, size_t *len);

/* resp.aiter_lines(): make a generator (tulip/gen.h) that yields the
 * body's lines as NUL-terminated strings without their "\n" or "\r\n"
 * (a last line without an end of line is yielded too), each valid until
 * the next tl_gen_next. It ends with the body, or fails with the
 * stream's error, or -E2BIG for a line over TL_CURL_MAX_LINE. Close the
 * generator (tl_gen_close) before the stream. Returns 0 and *out,
 * -EINVAL, -ENOMEM, TL_ENOTASK. Never suspends. */
TL_API int tl_curl_stream_lines(tl_curl_stream *s, tl_gen **out);

/* Close the stream: stop the transfer if it is still running (its
 * connection is then closed, not reused), give back the client's turn,
 * free it. s NULL: no-op. Never suspends. */
TL_API void tl_curl_stream_close(tl_curl_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_CURL_H */
