/* tulip/tls.h — libtulip-tls: TLS streams over OpenSSL 3 (link
 * tulip-tls; pkg-config tulip-tls).
 *
 *     reader, writer = await asyncio.open_connection(host, 443, ssl=ctx)
 *
 *     tl_tls_ctx *ctx;
 *     tl_tls_client_ctx(&ctx, NULL);          (system CAs, verification on)
 *     int fd = tl_net_connect(&addr, SOCK_STREAM);
 *     tl_stream *s;
 *     rc = tl_tls_connect(&s, ctx, fd, "example.org", NULL);
 *     ... tl_stream_readline / tl_stream_write / tl_stream_drain ...
 *     tl_stream_wait_closed(s);                (close_notify, closes fd)
 *     tl_tls_ctx_free(ctx);
 *
 * A TLS stream is a tl_stream (tulip/stream.h) whose lower layer is an
 * OpenSSL connection over the fd: every stream call works on it, with the
 * stream's rules. Closing sends close_notify (best effort, never waits).
 * An end of stream without the peer's close_notify is a truncation:
 * reads return -ECONNABORTED, not 0.
 *
 * Client certificates (mutual TLS): a server context with
 * tl_tls_server_opts.client_ca_file asks every client for a certificate
 * and verifies it against that file (and refuses a client that sends
 * none, unless client_cert_optional); a client context with
 * tl_tls_client_opts.cert_file and key_file presents one when asked.
 * tl_tls_peer_subject names the verified peer.
 *
 * Errors are negative codes with OpenSSL's words attached by tl_fail
 * (tl_fail_message(rc)):
 *   -EKEYREJECTED  a certificate was refused: the peer's failed
 *                  verification (unknown CA, self-signed, expired, wrong
 *                  host name; a client that sent none to a server that
 *                  requires one), or the peer refused ours (its alert:
 *                  "unknown ca", "certificate required", ...);
 *   -EPROTO        any other TLS failure (handshake refused, bad record,
 *                  no common ALPN protocol, ...);
 *   -ECONNABORTED  the peer ended the connection without close_notify;
 *   -ENOENT        a certificate, key or CA file missing (-EPROTO: one
 *                  OpenSSL cannot use); -EINVAL  bad arguments;
 *   -errno         the socket's error; -ECANCELED, TL_ENOTASK.
 * A read cancelled (or timed out) mid-record loses nothing: OpenSSL
 * keeps the part that arrived and the next read goes on from there.
 * OpenSSL's error queue is cleared before and drained after every call,
 * so one task's error never shows in another's.
 *
 * A context is shared by any number of streams of any loop and
 * threads; free it once no further call will start with it (handshakes
 * under way and streams hold a reference). Streams follow tl_stream's
 * thread rules.
 */
#ifndef TULIP_TLS_H
#define TULIP_TLS_H

#include <tulip.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A client or server context (opaque; heap). */
typedef struct tl_tls_ctx tl_tls_ctx;

/* Options of tl_tls_client_ctx (NULL: every default). */
typedef struct tl_tls_client_opts {
    const char *ca_file; /* PEM file of trusted CAs instead of the
                            system's store; NULL: the system's */
    int insecure;        /* non-zero: do not verify the peer at all
                            (tests only) */
    const char *alpn;    /* protocols to offer, comma-separated
                            ("h2,http/1.1"); NULL: no ALPN */
    int no_resume;       /* non-zero: keep no sessions, every handshake
                            is a full one */
    const char *cert_file; /* PEM certificate chain to present when a
                            server asks for one (mutual TLS); NULL: none
                            (an empty answer). Needs key_file. */
    const char *key_file;  /* PEM private key of cert_file */
} tl_tls_client_opts;

/* Options of tl_tls_server_ctx (NULL: every default). */
typedef struct tl_tls_server_opts {
    const char *alpn;    /* protocols the server accepts, in its order of
                            preference, comma-separated; NULL: no ALPN.
                            A client offering none of them is refused. */
    const char *client_ca_file; /* PEM file of the CAs whose client
                            certificates are accepted: non-NULL asks every
                            client for a certificate (mutual TLS) and
                            verifies it against these CAs only; NULL: no
                            client certificates asked for */
    int client_cert_optional; /* with client_ca_file, non-zero: a client
                            that sends no certificate is let in
                            (tl_tls_peer_subject NULL); one that sends a
                            certificate must still pass verification.
                            Zero: a client without one is refused. */
} tl_tls_server_opts;

/* Make a client context: TLS 1.2 or later, the peer's certificate
 * verified against the system's CAs (or opts->ca_file). Unless
 * opts->no_resume, it remembers the session each server gives (the last
 * one per host name and peer address; at most 64 peers, the oldest
 * forgotten) and offers it on the next tl_tls_connect to that peer, which
 * then skips the certificate exchange (tl_tls_resumed). A TLS 1.3 server
 * sends its tickets after the handshake: a connection keeps them only
 * once it has read something. A TLS 1.3 ticket is offered once. With
 * opts->cert_file and key_file it presents that certificate to servers
 * that ask (mutual TLS); the files are read now. Returns 0 and
 * *out, -EINVAL (out NULL, an empty or over-long ALPN name, cert_file
 * without key_file or the other way round), -ENOENT (ca_file, cert_file
 * or key_file missing), -EPROTO (OpenSSL refused the CA file, the
 * certificate or the key, the key does not match the certificate, or the
 * setup failed), -ENOMEM, each with OpenSSL's words (tl_fail). Never
 * suspends; any thread. Free it with tl_tls_ctx_free. */
TL_API int tl_tls_client_ctx(tl_tls_ctx **out, const tl_tls_client_opts *opts);

/* Make a server context from a PEM certificate chain file and its PEM
 * private key file. It lets clients resume: two TLS 1.3 tickets after
 * each full handshake, TLS 1.2 sessions kept in OpenSSL's server cache.
 * With opts->client_ca_file it asks each client for a certificate, names
 * those CAs in the request, and verifies what comes against them (a
 * resumed session keeps the certificate verified when it began).
 * Returns 0 and *out, -EINVAL (out, cert_file or
 * key_file NULL; a bad ALPN list), -ENOENT (a file missing, client_ca_file
 * included), -EPROTO (unreadable certificate, key or client CA file, or
 * the key does not match), -ENOMEM, each with OpenSSL's words. Never
 * suspends; any thread. */
TL_API int tl_tls_server_ctx(tl_tls_ctx **out, const char *cert_file,
                             const char *key_file,
                             const tl_tls_server_opts *opts);

/* Free ctx (NULL: nothing). Streams made with it may go on (they hold
 * a reference; the last one out frees the context and its sessions).
 * Never suspends; any thread. */
TL_API void tl_tls_ctx_free(tl_tls_ctx *ctx);

/* The client handshake over fd, a connected stream socket: sends
 * host as SNI and, unless the context is insecure, checks that the
 * certificate names host (a DNS name or an IP address literal; NULL: no
 * SNI and no name check — the chain is still verified). fd is made
 * non-blocking. On success *out is a TLS stream (opts as in
 * tl_stream_open) that owns fd unless TL_STREAM_BORROW; end it with
 * tl_stream_wait_closed. On failure nothing was kept: fd is still the
 * caller's, open (close it).
 * Returns 0, -EKEYREJECTED (a certificate refused, either way: the reason
 * attached), -EPROTO, -ECONNRESET, -ECONNABORTED (the peer hung up during the
 * handshake), -ECANCELED (the task or a scope was cancelled: a timeout
 * scope bounds a peer that never answers), -EINVAL (out, ctx NULL, ctx
 * a server context, fd < 0), -ENOMEM, TL_ENOTASK. SUSPENDS (a
 * cancellation point). */
TL_API TL_NODISCARD int tl_tls_connect(tl_stream **out, tl_tls_ctx *ctx,
                                       int fd, const char *host,
                                       const tl_stream_opts *opts);

/* The server handshake over fd, an accepted stream socket. As
 * tl_tls_connect, with ctx a server context (-EINVAL otherwise). With
 * the context's client_ca_file, a client certificate that fails
 * verification, or none when one is required, is -EKEYREJECTED here
 * (OpenSSL's reason attached) and the client is sent an alert. In TLS 1.2
 * the client's tl_tls_connect fails too; in TLS 1.3 the client finishes
 * its side of the handshake before the server has judged its certificate,
 * so it learns of the refusal at its next read or write: -EKEYREJECTED
 * with the server's alert attached. SUSPENDS (a cancellation point). */
TL_API TL_NODISCARD int tl_tls_accept(tl_stream **out, tl_tls_ctx *ctx,
                                      int fd, const tl_stream_opts *opts);

/* The ALPN protocol agreed on s (a NUL-terminated string owned by s,
 * valid until tl_stream_wait_closed), or NULL: none agreed, s not a TLS
 * stream, or its transport already closed. Never suspends. */
TL_API const char *tl_tls_alpn(const tl_stream *s);

/* 1 if s's handshake resumed an earlier session (no certificate was
 * exchanged: the one verified then still vouches), 0 if it was a full
 * handshake, s is not a TLS stream, or its transport already closed.
 * Never suspends. */
TL_API int tl_tls_resumed(const tl_stream *s);

/* The subject of the certificate the peer presented and that was
 * verified, one line in RFC 2253 form ("CN=alice,O=tulip"): on a server,
 * the client's (with client_ca_file; also on a resumed session); on a
 * client, the server's. A NUL-terminated string owned by s, valid until
 * tl_stream_wait_closed. NULL: the peer presented none, it was not
 * verified (an insecure client context), s is not a TLS stream, or its
 * transport already closed. Never suspends. */
TL_API const char *tl_tls_peer_subject(const tl_stream *s);

/* The host name the client sent as SNI, on either side: on a server, the
 * name the client asked for (to pick among names it serves); on a
 * client, the host given to tl_tls_connect when it was a name. A
 * NUL-terminated string owned by s, valid until tl_stream_wait_closed.
 * NULL: none was sent (an IP address literal or a NULL host; SNI carries
 * names only), s is not a TLS stream, or its transport already closed.
 * Never suspends. */
TL_API const char *tl_tls_server_name(const tl_stream *s);

/* The TLS version of s ("TLSv1.3", ...), or NULL as for tl_tls_alpn.
 * Never suspends. */
TL_API const char *tl_tls_version(const tl_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* TULIP_TLS_H */
