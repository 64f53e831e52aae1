/*
 * Addresses for the network layer: host and port strings to socket
 * addresses, and Unix socket paths.
 *
 * A numeric host needs no lookup (asyncio's _ipaddr_info does the same);
 * only a name goes to the resolver.
 */
#include <netdb.h>
#include <string.h>
#include <sys/un.h>

#include "net.h"

int cio__resolve(const char *host, const char *port, int passive, struct addrinfo **res) {
    if (!port || (!host && !passive)) return -EINVAL;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    int rc = getaddrinfo(host, port, &hints, res);
    if (rc == 0) return 0;
    return rc == EAI_MEMORY ? -ENOMEM : rc == EAI_SYSTEM ? -errno : -EINVAL;
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
