/*
 * Pipes 10 MiB through `cat` with communicate.
 *
 * communicate writes the input to the child's stdin while it reads the
 * child's stdout, so neither side waits on the other: a pipe holds only
 * 64 KiB, and a program that first wrote everything and then read would
 * stop for good once both pipes are full. A heartbeat task shows that the
 * loop keeps running meanwhile.
 *
 * The Python it mirrors:
 *
 *     async def main():
 *         data = bytes(i * 7 % 251 for i in range(10 << 20))
 *         proc = await asyncio.create_subprocess_exec(
 *             'cat', stdin=PIPE, stdout=PIPE)
 *         out, _ = await proc.communicate(data)
 *         print(len(out), out == data, proc.returncode)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cio.h>

static int beats;

static void *heartbeat(void *arg) {
    (void)arg;
    for (;;) {
        if (cio_sleep(0.001) < 0) return NULL;
        beats++;
    }
}

static void *main_task(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    size_t size = (size_t)10 << 20;
    char *data = malloc(size);
    for (size_t i = 0; i < size; i++) data[i] = (char)(i * 7 % 251);
    cio_task *hb;
    cio_spawn(loop, heartbeat, NULL, &hb);

    cio_process_options opts = {0};
    opts.stdio[0] = CIO_STDIO_PIPE;
    opts.stdio[1] = CIO_STDIO_PIPE;
    cio_process *proc;
    int rc = cio_create_subprocess_exec(loop, "cat", NULL, &opts, &proc);
    if (rc < 0) {
        printf("could not start cat: %s\n", cio_strerror(rc));
        return NULL;
    }
    printf("sending %zu bytes through cat\n", size);
    void *out = NULL;
    size_t out_len = 0;
    rc = cio_process_communicate(proc, data, size, &out, &out_len, NULL, NULL);
    int code = -1;
    cio_process_returncode(proc, &code);
    printf("communicate: %s\n", cio_strerror(rc));
    printf("got back %zu bytes, identical: %s\n", out_len,
           out_len == size && memcmp(out, data, size) == 0 ? "yes" : "no");
    printf("cat exited with %d\n", code);
    printf("the loop kept running meanwhile: %s\n", beats > 0 ? "yes" : "no");
    cio_task_cancel(hb, NULL);
    cio_await(hb, NULL);
    cio_future_unref(hb);
    cio_process_free(proc);
    free(out);
    free(data);
    return NULL;
}

int main(void) {
    return cio_run(main_task, NULL, NULL) < 0 ? 1 : 0;
}
