/* A program that uses an installed cio: a task echoes a message through a
 * socket pair. The consumer test builds it against an install tree. */
#include <cio.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#if CIO_VERSION_MAJOR != 0 || CIO_VERSION_MINOR != 2
#error "the installed cio.h is not the version this test expects"
#endif

static int sv[2];

static void *echo_once(void *arg) {
    (void)arg;
    char buf[16] = {0};
    if (cio_sock_sendall(sv[0], "ping", 4) != 4) return cio_raise(-EIO);
    if (cio_sock_recv(sv[1], buf, sizeof buf) != 4) return cio_raise(-EIO);
    return strcmp(buf, "ping") == 0 ? NULL : cio_raise(-EIO);
}

int main(void) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 1;
    int rc = cio_run(echo_once, NULL, NULL);
    cio_close(sv[0]);
    cio_close(sv[1]);
    printf("consumer: %s\n", rc == 0 ? "ok" : cio_strerror(rc));
    return rc == 0 ? 0 : 1;
}
