/*
 * A server that stops cleanly on Ctrl-C.
 *
 * cio_run holds SIGINT while its main task runs, as asyncio.run does since
 * Python 3.11: the first Ctrl-C cancels the main task, which here is
 * serving an echo server forever. serve_forever then closes the server and
 * returns -ECANCELED; the main task says "shutting down", waits until the
 * last connection is gone, and ends cancelled; cio_run returns
 * -CIO_EINTERRUPTED (asyncio.run raises KeyboardInterrupt). A second
 * Ctrl-C during the clean-up would end the process at once.
 *
 * Run it and press Ctrl-C, or give --self-interrupt: a client task then
 * connects, has one line echoed, and sends the process SIGINT itself, so
 * the whole story runs as one command (scripts/tour.sh does that). A
 * program started with SIGINT ignored (a background job of a
 * non-interactive shell) is left so by cio_run, as Python leaves it: there
 * Ctrl-C does nothing; `env --default-signal=INT` gives it the default.
 *
 * The Python it mirrors:
 *
 *     async def handle_echo(reader, writer):
 *         while line := await reader.readline():
 *             writer.write(line)
 *             await writer.drain()
 *         writer.close()
 *
 *     async def main():
 *         server = await asyncio.start_server(handle_echo, '127.0.0.1', 0)
 *         try:
 *             await server.serve_forever()
 *         except asyncio.CancelledError:
 *             print('shutting down')
 *             await server.wait_closed()
 *             raise
 *
 *     try:
 *         asyncio.run(main())
 *     except KeyboardInterrupt:
 *         print('interrupted')
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cio.h>

static char port[16];
static int self_interrupt;

static void *handle_echo(cio_stream *s, void *arg) {
    (void)arg;
    char line[256];
    ssize_t n;
    while ((n = cio_stream_readline(s, line, sizeof line)) > 0) {
        int rc = cio_stream_write(s, line, (size_t)n);
        if (rc == 0) rc = cio_stream_drain(s);
        if (rc < 0) return cio_raise(rc);
    }
    return n < 0 ? cio_raise((int)n) : NULL;
}

/* --self-interrupt: what a user at the terminal would do, in a task. */
static void *client(void *arg) {
    (void)arg;
    cio_stream *c;
    int rc = cio_open_connection("127.0.0.1", port, &c);
    if (rc < 0) return cio_raise(rc);
    const char hello[] = "hello before Ctrl-C\n";
    char echo[64] = {0};
    rc = cio_stream_write(c, hello, sizeof hello - 1);
    if (rc == 0) rc = cio_stream_drain(c);
    ssize_t got = rc == 0 ? cio_stream_readline(c, echo, sizeof echo - 1) : rc;
    if (got > 0) {
        echo[got - 1] = '\0';
        printf("client: sent a line, got back \"%s\"\n", echo);
    }
    cio_stream_close(c);
    cio_stream_wait_closed(c);
    cio_stream_free(c);
    printf("client: pressing Ctrl-C (sending SIGINT to the process)\n");
    fflush(stdout);
    kill(getpid(), SIGINT);
    return got < 0 ? cio_raise((int)got) : NULL;
}

static void *main_task(void *arg) {
    (void)arg;
    cio_server *server;
    int rc = cio_start_server(cio_running_loop(), handle_echo, NULL, "127.0.0.1", "0", NULL,
                              &server);
    if (rc < 0) return cio_raise(rc);
    int fd;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (cio_server_sockets(server, &fd, 1) != 1 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        cio_server_free(server);
        return cio_raise(-EIO);
    }
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    printf("echo server listening on 127.0.0.1:%s; press Ctrl-C to stop it\n", port);
    fflush(stdout);
    if (self_interrupt) cio_spawn(cio_running_loop(), client, NULL, NULL);

    rc = cio_server_serve_forever(server);
    if (rc == -ECANCELED) {
        /* except CancelledError: clean up, then let the cancellation go on. */
        printf("shutting down: the server is %s\n",
               cio_server_is_serving(server) ? "still serving" : "closed");
        int wrc = cio_server_wait_closed(server);
        printf("last connection gone (%s)\n", wrc == 0 ? "ok" : cio_strerror(wrc));
    }
    cio_server_free(server);
    return cio_raise(rc);
}

int main(int argc, char **argv) {
    self_interrupt = argc > 1 && strcmp(argv[1], "--self-interrupt") == 0;
    /* cio_run leaves an ignored SIGINT alone, as asyncio does, and a shell
     * starts background jobs with SIGINT ignored: the run that must end by
     * itself asks for the default first. */
    if (self_interrupt) signal(SIGINT, SIG_DFL);
    int rc = cio_run(main_task, NULL, NULL);
    if (rc == -CIO_EINTERRUPTED) {
        /* except KeyboardInterrupt: */
        printf("interrupted: %s\n", cio_strerror(rc));
        /* At a terminal, the shell's convention for "ended by Ctrl-C"; the
         * self-interrupting run ends as planned. */
        return self_interrupt ? 0 : 130;
    }
    fprintf(stderr, "ctrl_c_server: %s\n", cio_strerror(rc));
    return 1;
}
