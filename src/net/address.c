/*
 * Addresses for the network layer: host and port strings to socket
 * addresses, and Unix socket paths.
 *
 * A numeric host needs no lookup (asyncio's _ipaddr_info does the same);
 * only a name goes to the resolver, on the thread pool (cio_getaddrinfo).
 */
#include <netdb.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"

/* A numeric port above 65535: glibc's getaddrinfo takes it modulo 65536
 * (99999 listens on 34463), where asyncio raises OverflowError. */
static int port_out_of_range(const char *port) {
    unsigned long value = 0;
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9') return 0; /* a service name */
        value = value * 10 + (unsigned long)(*p - '0');
        if (value > 65535) return 1;
    }
    return 0;
}

int cio__resolve(const char *host, const char *port, int passive, struct addrinfo **res) {
    /* A server's empty host means every interface, as NULL does (asyncio's
     * create_server(host='')). */
    if (passive && host && !*host) host = NULL;
    if (!port || !*port || (!host && !passive) || (host && !*host)) return -EINVAL;
    if (port_out_of_range(port)) return -EINVAL;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    /* In a task, cio_getaddrinfo answers a numeric address at once and
     * sends a name to the thread pool. Outside one (a server may be made
     * before the loop runs) only a numeric address can be answered. */
    if (cio_current_task()) return cio_getaddrinfo(host, port, &hints, res);
    hints.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    int eai = getaddrinfo(host, port, &hints, res);
    if (eai == EAI_NONAME) return -EPERM;
    return cio__eai_error(eai, eai == EAI_SYSTEM ? errno : 0);
}

void cio__remove_stale_socket(const char *path) {
    /* asyncio removes a stale socket file before binding a Unix socket to
     * a path, so that a restarted server does not fail with EADDRINUSE.
     * Only a socket file goes: any other file is left for bind to refuse. */
    struct stat st;
    if (path[0] != '\0' && stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
}

int cio__unix_address(const char *path, struct sockaddr_un *addr, unsigned int *len) {
    if (!path || !*path) return -EINVAL;
    size_t n = strlen(path);
    /* A path needs its terminating NUL in sun_path; an abstract name (its
     * '@' becomes the leading NUL) may fill all of it. */
    bool abstract = path[0] == '@';
    if (n > sizeof addr->sun_path - (abstract ? 0 : 1)) return -ENAMETOOLONG;
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, n);
    /* '@' first names an abstract socket, as in ss(8)'s notation. */
    if (abstract) addr->sun_path[0] = '\0';
    *len = (unsigned int)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 0 : 1));
    return 0;
}
