/*
 * Addresses for the network layer: host and port strings to socket
 * addresses, and Unix socket paths.
 *
 * A numeric host needs no lookup (asyncio's _ipaddr_info does the same);
 * only a name goes to the resolver, on the thread pool (cio_getaddrinfo).
 */
#include <netdb.h>
#include <string.h>
#include <sys/un.h>

#include "net.h"

int cio__resolve(const char *host, const char *port, int passive, struct addrinfo **res) {
    if (!port || !*port || (!host && !passive) || (host && !*host)) return -EINVAL;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    /* A numeric address is answered here, in any context (a server may be
     * made outside a task). A name goes to the thread pool, which needs
     * a task to await it. */
    struct addrinfo numeric = hints;
    numeric.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &numeric, res);
    if (rc == 0) return 0;
    if (rc == EAI_MEMORY) return -ENOMEM;
    if (rc != EAI_NONAME) return -CIO_EAI(rc);
    if (!cio_current_task()) return -EPERM;
    return cio_getaddrinfo(host, port, &hints, res);
}

int cio__unix_address(const char *path, struct sockaddr_un *addr, unsigned int *len) {
    if (!path || !*path) return -EINVAL;
    size_t n = strlen(path);
    if (n >= sizeof addr->sun_path) return -ENAMETOOLONG;
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, n);
    /* '@' first names an abstract socket, as in ss(8)'s notation. */
    if (path[0] == '@') addr->sun_path[0] = '\0';
    *len = (unsigned int)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
    return 0;
}
