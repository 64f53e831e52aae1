/*
 * Runs `ls -l` in a child process and prints what it wrote.
 *
 * The directory listed is one this program makes, with two files of known
 * sizes, so the listing is the same on every machine. The child's stdout is
 * a pipe, read as a stream line by line while the child runs; its exit code
 * comes from wait.
 *
 * The Python it mirrors:
 *
 *     async def main():
 *         proc = await asyncio.create_subprocess_exec(
 *             'ls', '-l', directory, stdout=asyncio.subprocess.PIPE)
 *         while line := await proc.stdout.readline():
 *             print(line.decode(), end='')
 *         print('exit code', await proc.wait())
 *     asyncio.run(main())
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cio.h>

static char directory[] = "/tmp/cio-ls-XXXXXX";

static void make_file(const char *name, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    FILE *f = fopen(path, "w");
    for (size_t i = 0; i < size; i++) fputc('x', f);
    fclose(f);
}

static void remove_file(const char *name) {
    char path[64];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    unlink(path);
}

static void *list_directory(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    char *const argv[] = {"ls", "-l", directory, NULL};
    cio_process_options opts = {0};
    opts.stdio[1] = CIO_STDIO_PIPE;
    opts.env = (char *[]){"LC_ALL=C", "PATH=/usr/bin:/bin", NULL};
    cio_process *proc;
    int rc = cio_create_subprocess_exec(loop, "ls", argv, &opts, &proc);
    if (rc < 0) {
        printf("could not start ls: %s\n", cio_strerror(rc));
        return NULL;
    }
    printf("$ ls -l (pid %s)\n", cio_process_pid(proc) > 0 ? "known" : "unknown");
    char line[512];
    ssize_t n;
    while ((n = cio_stream_readline(cio_process_stdout(proc), line, sizeof line)) > 0)
        printf("%.*s", (int)n, line);
    int code;
    rc = cio_process_wait(proc, &code);
    printf("exit code %d\n", rc == 0 ? code : rc);
    cio_process_free(proc);
    return NULL;
}

int main(void) {
    if (!mkdtemp(directory)) return 1;
    make_file("hello.txt", 12);
    make_file("world.txt", 3456);
    int rc = cio_run(list_directory, NULL, NULL);
    remove_file("hello.txt");
    remove_file("world.txt");
    rmdir(directory);
    return rc < 0 ? 1 : 0;
}
