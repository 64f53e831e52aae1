/*
 * Name resolution: cio_getaddrinfo and cio_getnameinfo, asyncio's
 * loop.getaddrinfo / loop.getnameinfo.
 *
 * The C library's resolver blocks, so a lookup runs on the loop's thread
 * pool (flow/pool.c) as a "lookup" item: at most half the workers resolve
 * names at once, so slow lookups cannot occupy the whole pool and starve
 * other work. A request that needs no resolver at all (a numeric address
 * and a numeric port, as asyncio's _ipaddr_info checks; numeric flags for
 * getnameinfo) is answered in the loop's thread, with no thread and no
 * allocation beyond libc's own.
 *
 * Everything the worker touches lives in one heap request, never on the
 * task's stack: a task cancelled while its lookup runs returns -ECANCELED
 * at once, and the lookup finishes on the worker. Its result is then freed
 * in the loop's thread (freeaddrinfo) together with the request.
 *
 * Errors: the resolver's EAI_* code becomes -CIO_EAI(code), one distinct
 * cio code per EAI value, which cio_strerror names with gai_strerror's
 * text. EAI_SYSTEM carries its cause in errno, which is saved in the
 * worker and returned as -errno; EAI_MEMORY is -ENOMEM, as every other
 * allocation failure in cio. Nothing the resolver said is lost.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "net.h"

int cio__eai_error(int eai, int saved_errno) {
    if (eai == 0) return 0;
    if (eai == EAI_SYSTEM) return saved_errno > 0 ? -saved_errno : -EIO;
    if (eai == EAI_MEMORY) return -ENOMEM;
    return -CIO_EAI(eai);
}

/* True if getaddrinfo can answer without the resolver: no host (the
 * wildcard or loopback address) or a numeric address, and no service or a
 * numeric port. AI_CANONNAME may need a reverse lookup: never fast. */
static int needs_no_resolver(const char *host, const char *service, const struct addrinfo *hints) {
    if (hints && (hints->ai_flags & AI_CANONNAME)) return 0;
    unsigned char addr[sizeof(struct in6_addr)];
    if (host && inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1)
        return 0;
    if (!service) return 1;
    if (!*service) return 0;
    for (const char *c = service; *c; c++)
        if (*c < '0' || *c > '9') return 0;
    return 1;
}

typedef struct gai_req {
    struct addrinfo hints;
    int has_hints;
    const char *host;     /* point into the same allocation, or NULL */
    const char *service;
    struct addrinfo *res;
    int rc;
    int saved_errno;
} gai_req;

static void *gai_run(void *arg) {
    gai_req *r = arg;
    r->rc = getaddrinfo(r->host, r->service, r->has_hints ? &r->hints : NULL, &r->res);
    r->saved_errno = r->rc == EAI_SYSTEM ? errno : 0;
    return r;
}

/* The lookup will not be handed back (cancelled, or the loop closed). */
static void gai_drop(void *result, void *arg) {
    (void)result;
    gai_req *r = arg;
    if (r->rc == 0 && r->res) freeaddrinfo(r->res);
    cio__free(r);
}

int cio_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res) {
    if (res) *res = NULL;
    if (!res) return -EINVAL;
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    rc = cio__loop_check(t->fut.loop);
    if (rc < 0) return rc;
    if (needs_no_resolver(host, service, hints)) {
        struct addrinfo numeric = {0};
        if (hints) numeric = *hints;
        numeric.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
        numeric.ai_addrlen = 0;
        numeric.ai_addr = NULL;
        numeric.ai_canonname = NULL;
        numeric.ai_next = NULL;
        int eai = getaddrinfo(host, service, &numeric, res);
        return cio__eai_error(eai, eai == EAI_SYSTEM ? errno : 0);
    }
    size_t hlen = host ? strlen(host) + 1 : 0, slen = service ? strlen(service) + 1 : 0;
    gai_req *r = cio__calloc(1, sizeof *r + hlen + slen);
    if (!r) return -ENOMEM;
    char *strings = (char *)(r + 1);
    if (host) r->host = memcpy(strings, host, hlen);
    if (service) r->service = memcpy(strings + hlen, service, slen);
    if (hints) {
        /* Only the four fields getaddrinfo reads from hints. */
        r->hints.ai_flags = hints->ai_flags;
        r->hints.ai_family = hints->ai_family;
        r->hints.ai_socktype = hints->ai_socktype;
        r->hints.ai_protocol = hints->ai_protocol;
        r->has_hints = 1;
    }
    rc = cio__pool_run(gai_run, r, CIO__POOL_LOOKUP, gai_drop, NULL);
    /* -ECANCELED: the request belongs to the pool, which drops it. */
    if (rc == -ECANCELED) return rc;
    if (rc == 0) {
        rc = cio__eai_error(r->rc, r->saved_errno);
        if (rc == 0) *res = r->res;
    }
    cio__free(r);
    return rc;
}

typedef struct gni_req {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int flags;
    socklen_t hostlen, servlen; /* 0: not asked for */
    int rc;
    int saved_errno;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
} gni_req;

static void *gni_run(void *arg) {
    gni_req *r = arg;
    r->rc = getnameinfo((struct sockaddr *)&r->addr, r->addrlen, r->hostlen ? r->host : NULL,
                        r->hostlen, r->servlen ? r->serv : NULL, r->servlen, r->flags);
    r->saved_errno = r->rc == EAI_SYSTEM ? errno : 0;
    return r;
}

static void gni_drop(void *result, void *arg) {
    (void)result;
    cio__free(arg);
}

/* Room for a numeric host or service: an IPv6 address with a scope name
 * (INET6_ADDRSTRLEN + 1 + IF_NAMESIZE) or a Unix socket's path (108). */
#define NUMERIC_MAX 128

static socklen_t capped(size_t len, size_t cap) {
    return (socklen_t)(len < cap ? len : cap);
}

int cio_getnameinfo(const struct sockaddr *addr, unsigned int addrlen, int flags, char *host,
                    size_t hostlen, char *serv, size_t servlen) {
    if (!addr || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage)) return -EINVAL;
    if ((!host || !hostlen) && (!serv || !servlen)) return -EINVAL;
    int rc;
    cio__task *t = cio__current(&rc);
    if (!t) return rc;
    rc = cio__loop_check(t->fut.loop);
    if (rc < 0) return rc;
    if (!host) hostlen = 0;
    if (!serv) servlen = 0;
    /* Numbers only: no resolver, no thread. The answer goes to buffers of
     * our own first, copied out only on success (the C library may write
     * part of a result before it fails, as an overflow). A number, even an
     * IPv6 address with its scope's name or a Unix socket's path, fits in
     * NUMERIC_MAX; a caller's smaller buffer keeps its own size, so an
     * overflow is still reported as one. */
    if ((!hostlen || (flags & NI_NUMERICHOST)) && (!servlen || (flags & NI_NUMERICSERV))) {
        char h[NUMERIC_MAX], sv[NUMERIC_MAX];
        int eai = getnameinfo(addr, addrlen, hostlen ? h : NULL, capped(hostlen, sizeof h),
                              servlen ? sv : NULL, capped(servlen, sizeof sv), flags);
        if (eai) return cio__eai_error(eai, eai == EAI_SYSTEM ? errno : 0);
        if (hostlen) memcpy(host, h, strlen(h) + 1);
        if (servlen) memcpy(serv, sv, strlen(sv) + 1);
        return 0;
    }
    gni_req *r = cio__calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    memcpy(&r->addr, addr, addrlen);
    r->addrlen = addrlen;
    r->flags = flags;
    r->hostlen = capped(hostlen, sizeof r->host);
    r->servlen = capped(servlen, sizeof r->serv);
    rc = cio__pool_run(gni_run, r, CIO__POOL_LOOKUP, gni_drop, NULL);
    if (rc == -ECANCELED) return rc;
    if (rc == 0) {
        rc = cio__eai_error(r->rc, r->saved_errno);
        if (rc == 0) {
            if (hostlen) memcpy(host, r->host, strlen(r->host) + 1);
            if (servlen) memcpy(serv, r->serv, strlen(r->serv) + 1);
        }
    }
    cio__free(r);
    return rc;
}
