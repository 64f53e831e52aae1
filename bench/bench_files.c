/*
 * File reads: 4 KiB random reads from a file in the page cache, through
 * cio_file_read, on io_uring's ring path against the thread-pool path, in
 * the same run:
 *
 *   files_read4k_ring_c<N>      ns per read (wall clock), the loop on io_uring
 *                               with its file calls on the ring
 *   files_read4k_pool_c<N>      the same loop on io_uring with the file calls
 *                               switched to the pool (CIO_URING_DISABLE=files),
 *                               which is what epoll loops always do
 *   files_read4k_pool_epoll_c<N> the pool path on an epoll loop, for reference
 *   ..._cpu                     CPU time of the whole process (every thread:
 *                               the loop, the pool's workers, the kernel's
 *                               io-wq) per read, in ns
 *   files_read4k_ring_over_pool_c<N>   ratio of the medians (below 1: the
 *                               ring is faster); the same for _cpu
 *
 * N is the number of reads in flight: 1 task reading in turn, or 32 tasks
 * each reading in turn. The file (64 MiB; 4 MiB in a quick run) is made in
 * CIO_BENCH_TMPDIR (default /tmp), read once whole so that it is in the
 * page cache, and removed at the end. The configurations run interleaved,
 * round after round, and each figure is the median over the rounds.
 * Without io_uring the ring figures are left out (a '#' line says why).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "cio.h"

enum { BLOCK = 4096, TASKS_MAX = 32 };

static int file_fd;
static size_t file_blocks;

typedef struct reader {
    long reads;
    uint64_t seed;
} reader;

static uint64_t next_random(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void *read_randomly(void *arg) {
    reader *r = arg;
    char buf[BLOCK];
    for (long i = 0; i < r->reads; i++) {
        int64_t off = (int64_t)(next_random(&r->seed) % file_blocks) * BLOCK;
        if (cio_file_read(file_fd, buf, sizeof buf, off) != BLOCK) return cio_raise(-EIO);
    }
    return NULL;
}

static int64_t cpu_now_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

enum path { RING, POOL, POOL_EPOLL, PATHS };
static const char *path_name[PATHS] = {"ring", "pool", "pool_epoll"};

static cio_loop *make_loop(enum path p) {
    if (p == POOL)
        setenv("CIO_URING_DISABLE", "files", 1);
    else
        unsetenv("CIO_URING_DISABLE");
    cio_loop_options opts = {.backend = p == POOL_EPOLL ? "epoll" : "uring"};
    cio_loop *loop = NULL;
    int rc = cio_loop_new_with(&opts, &loop);
    unsetenv("CIO_URING_DISABLE");
    return rc < 0 ? NULL : loop;
}

/* One round: tasks readers, total reads between them; ns per read, wall
 * clock and CPU. */
static void run_round(enum path p, int tasks, long total, double *wall, double *cpu) {
    cio_loop *loop = make_loop(p);
    if (!loop) {
        fprintf(stderr, "bench_files: no %s loop\n", path_name[p]);
        exit(1);
    }
    reader r[TASKS_MAX];
    cio_task *t[TASKS_MAX];
    /* The pool starts its workers on first use: a few reads first, so that
     * the round measures reads, not thread creation. */
    for (int i = 0; i < tasks; i++) {
        r[i] = (reader){.reads = 4, .seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)};
        BENCH_CHECK(cio_spawn(loop, read_randomly, &r[i], &t[i]));
    }
    for (int i = 0; i < tasks; i++) {
        BENCH_CHECK(cio_run_until_complete(loop, t[i], NULL));
        cio_future_unref(t[i]);
    }
    for (int i = 0; i < tasks; i++) {
        r[i].reads = total / tasks;
        BENCH_CHECK(cio_spawn(loop, read_randomly, &r[i], &t[i]));
    }
    int64_t w0 = bench_now_ns(), c0 = cpu_now_ns();
    for (int i = 0; i < tasks; i++) BENCH_CHECK(cio_run_until_complete(loop, t[i], NULL));
    double n = (double)(total / tasks * tasks);
    *wall = (double)(bench_now_ns() - w0) / n;
    *cpu = (double)(cpu_now_ns() - c0) / n;
    for (int i = 0; i < tasks; i++) cio_future_unref(t[i]);
    cio_loop_free(loop);
}

int main(void) {
    size_t size = bench_quick() ? (size_t)4 << 20 : (size_t)64 << 20;
    file_blocks = size / BLOCK;
    const char *dir = getenv("CIO_BENCH_TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/cio-bench-files-%d", dir && *dir ? dir : "/tmp", (int)getpid());
    file_fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
    if (file_fd < 0) {
        perror(path);
        return 1;
    }
    unlink(path);
    /* Real data (not a hole), then read whole: the file is in the page
     * cache for every round. */
    static char block[1 << 20];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (char)(i * 31 + 7);
    for (size_t off = 0; off < size; off += sizeof block)
        if (pwrite(file_fd, block, sizeof block, (off_t)off) != (ssize_t)sizeof block) {
            perror("pwrite");
            return 1;
        }
    for (size_t off = 0; off < size; off += sizeof block)
        if (pread(file_fd, block, sizeof block, (off_t)off) != (ssize_t)sizeof block) {
            perror("pread");
            return 1;
        }

    bool have_ring = false;
    cio_loop *probe = make_loop(RING);
    if (probe) {
        have_ring = strcmp(cio_loop_backend(probe), "io_uring") == 0;
        cio_loop_free(probe);
    }
    if (!have_ring) {
        cio_loop_options opts = {.backend = "auto"};
        cio_loop *loop;
        BENCH_CHECK(cio_loop_new_with(&opts, &loop));
        printf("# io_uring not available (%s): the ring figures are left out\n",
               cio_loop_backend_fallback_reason(loop));
        cio_loop_free(loop);
    }
    printf("# file %zu MiB in the page cache, 4 KiB random reads, interleaved rounds\n", size >> 20);

    static const int concurrency[] = {1, 32};
    enum { CONC = 2 };
    long total = bench_iters(20000, 256);
    int reps = bench_reps();
    static bench_stat wall[PATHS][CONC], cpu[PATHS][CONC];
    static char names[PATHS][CONC][2][64];
    for (int p = 0; p < PATHS; p++)
        for (int c = 0; c < CONC; c++) {
            snprintf(names[p][c][0], 64, "files_read4k_%s_c%d", path_name[p], concurrency[c]);
            snprintf(names[p][c][1], 64, "files_read4k_%s_c%d_cpu", path_name[p], concurrency[c]);
            wall[p][c] = (bench_stat){.name = names[p][c][0], .unit = "ns"};
            cpu[p][c] = (bench_stat){.name = names[p][c][1], .unit = "ns"};
        }
    for (int rep = 0; rep < reps; rep++)
        for (int c = 0; c < CONC; c++)
            for (int p = 0; p < PATHS; p++) {
                if (p != POOL_EPOLL && !have_ring) continue;
                double w, u;
                run_round((enum path)p, concurrency[c], total, &w, &u);
                bench_add(&wall[p][c], w);
                bench_add(&cpu[p][c], u);
            }
    for (int c = 0; c < CONC; c++)
        for (int p = 0; p < PATHS; p++) {
            if (p != POOL_EPOLL && !have_ring) continue;
            bench_report(&wall[p][c]);
            bench_report(&cpu[p][c]);
        }
    if (have_ring) {
        for (int c = 0; c < CONC; c++) {
            char name[64];
            snprintf(name, sizeof name, "files_read4k_ring_over_pool_c%d", concurrency[c]);
            bench_ratio(name, &wall[RING][c], &wall[POOL][c]);
            snprintf(name, sizeof name, "files_read4k_ring_over_pool_c%d_cpu", concurrency[c]);
            bench_ratio(name, &cpu[RING][c], &cpu[POOL][c]);
        }
    }
    close(file_fd);
    return 0;
}
