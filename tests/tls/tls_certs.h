/* tests/tls/tls_certs.h: the certificates libtulip-tls's tests (and
 * test_curl's nginx) use, made with the openssl command in a temporary
 * folder, once per process (make_certs; remove_certs at the end removes
 * the folder and all else put in it). Exits 77 (skipped) without openssl.
 * Needs TINY_ASSERT from tiny.h. Define TL_TEST_CERTS_DIR (a mkdtemp
 * template) before including it to name the folder otherwise. */
#ifndef TULIP_TEST_TLS_CERTS_H
#define TULIP_TEST_TLS_CERTS_H

#include <stdio.h>
#include <stdlib.h>

#ifndef TL_TEST_CERTS_DIR
#define TL_TEST_CERTS_DIR "/tmp/tulip-tls-XXXXXX"
#endif

static char g_dir[64];
static char g_ca[128], g_crt[128], g_key[128], g_self_crt[128], g_self_key[128];
/* Client certificates: alice's from the test CA, mallory's from another. */
static char g_alice_crt[128], g_alice_key[128], g_mallory_crt[128],
    g_mallory_key[128];

/* A CA, a server certificate it signs for localhost and 127.0.0.1, a
 * self-signed certificate for localhost, a client certificate the CA
 * signs (alice) and one another CA signs (mallory). Once per process. */
static void make_certs(void)
{
    if (g_dir[0]) return;
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: openssl not installed\n");
        exit(77);
    }
    snprintf(g_dir, sizeof g_dir, "%s", TL_TEST_CERTS_DIR);
    TINY_ASSERT(mkdtemp(g_dir));
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "(cd %s && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=tulip-test-ca "
             "-addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign,cRLSign && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout server.key -out server.csr -subj /CN=localhost && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
             "-CAcreateserial -out server.crt -days 2 -extfile ext.cnf && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes -keyout self.key -out self.crt -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout alice.key -out alice.csr -subj /O=tulip/CN=alice && "
             "printf 'extendedKeyUsage=clientAuth\\n' > client.cnf && "
             "openssl x509 -req -in alice.csr -CA ca.crt -CAkey ca.key "
             "-CAcreateserial -out alice.crt -days 2 -extfile client.cnf && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes -keyout ca2.key -out ca2.crt -days 2 -subj /CN=other-ca "
             "-addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign,cRLSign && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout mallory.key -out mallory.csr -subj /O=tulip/CN=mallory && "
             "openssl x509 -req -in mallory.csr -CA ca2.crt -CAkey ca2.key "
             "-CAcreateserial -out mallory.crt -days 2 -extfile client.cnf"
             ") >/dev/null 2>&1",
             g_dir);
    TINY_ASSERT_EQ(system(cmd), 0);
    snprintf(g_ca, sizeof g_ca, "%s/ca.crt", g_dir);
    snprintf(g_crt, sizeof g_crt, "%s/server.crt", g_dir);
    snprintf(g_key, sizeof g_key, "%s/server.key", g_dir);
    snprintf(g_self_crt, sizeof g_self_crt, "%s/self.crt", g_dir);
    snprintf(g_self_key, sizeof g_self_key, "%s/self.key", g_dir);
    snprintf(g_alice_crt, sizeof g_alice_crt, "%s/alice.crt", g_dir);
    snprintf(g_alice_key, sizeof g_alice_key, "%s/alice.key", g_dir);
    snprintf(g_mallory_crt, sizeof g_mallory_crt, "%s/mallory.crt", g_dir);
    snprintf(g_mallory_key, sizeof g_mallory_key, "%s/mallory.key", g_dir);
}

static void remove_certs(void)
{
    if (!g_dir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) {}
    g_dir[0] = 0;
}

#endif
