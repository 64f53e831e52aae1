/*
 * The echo benchmark's load generator: plain C on its own epoll loop (no
 * cio), so that it costs the same against every server.
 *
 * Load mode (the default): N connections, each sends one S-byte message,
 * waits until all S bytes came back, and sends the next one at once (one
 * message in flight per connection, so N is the concurrency). After a
 * warm-up the client counts, for a duration or a number of messages, the
 * messages completed and each one's latency (from the first byte handed to
 * send() to the last byte received) in a log-linear histogram, and prints
 *
 *     messages <n> msg            seconds <t> s
 *     msgs_per_sec <v> msg/s      p50_us <v> us      p99_us <v> us
 *     server_cpu_us_per_msg <v> us     (with -P: the server's utime+stime
 *                                       from /proc/PID/stat over the window)
 *
 * -C ctl,ack names perf's control FIFOs (perf stat --control fifo:ctl,ack
 * --delay=-1): the client enables the counters exactly over the measured
 * window, so a separate run can count the server's system calls per
 * message without attributing connection set-up or warm-up to them.
 *
 * Idle mode (-i N): opens N connections spread over the server's ports and
 * several source addresses 127.0.0.x (loopback has about 28,000 ephemeral
 * ports per source address and destination), sends one byte on each and
 * waits for its echo (so the server has accepted and served every one),
 * reads the server's VmRSS, closes them all, waits until the server has
 * closed its ends (its /proc/PID/fd count is back to where it was), and
 * reads VmRSS again:
 *
 *     idle_conns <n> conns   rss_before_kb   rss_held_kb   rss_closed_kb
 *     idle_bytes_per_conn <v> B      (held - before) / n
 *     idle_bytes_left_per_conn <v> B (closed - before) / n: memory that
 *                                    did not come back after the close
 *
 * Every figure line is "<name> <value> <unit>"; -x PREFIX prepends PREFIX_
 * to the names.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

#include "common.h"

static void die(const char *what) {
    fprintf(stderr, "echo client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram ------------------------------------------------------
 * Log-linear buckets over nanoseconds: values below 64 have a bucket each;
 * above, every power of two is split into 32 equal buckets, so a bucket is
 * at most 1/32 (3 %) of its value wide. 1,216 buckets cover 2^40 ns. */
#define HIST_SUB 32
#define HIST_BUCKETS (64 + 36 * HIST_SUB)
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_total;

static int hist_index(uint64_t v) {
    if (v < 64) return (int)v;
    int e = 63 - __builtin_clzll(v); /* >= 6 */
    int shift = e - 5;
    int i = 64 + (shift - 1) * HIST_SUB + (int)((v >> shift) - HIST_SUB);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static double hist_value(int i) {
    if (i < 64) return i;
    int shift = (i - 64) / HIST_SUB + 1;
    uint64_t m = (uint64_t)((i - 64) % HIST_SUB + HIST_SUB);
    return (double)(m << shift) + (double)(1ull << shift) / 2; /* the middle */
}

static void hist_add(uint64_t v) {
    hist[hist_index(v)]++;
    hist_total++;
}

static double hist_percentile(double p) {
    if (hist_total == 0) return 0;
    uint64_t want = (uint64_t)ceil(p * (double)hist_total), seen = 0;
    if (want == 0) want = 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= want) return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* ---- the server process, from /proc ------------------------------------------ */
static int server_pid;

/* utime + stime of every thread of the server, in microseconds. */
static double server_cpu_us(void) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", server_pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return -1;
    unsigned long long utime = 0, stime = 0;
    /* After ')' come field 3 (state) ... field 14 utime, field 15 stime. */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return -1;
    return (double)(utime + stime) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static long server_rss_kb(void) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

static long server_fd_count(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", server_pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---- connections -------------------------------------------------------------- */
typedef struct conn {
    int fd;
    uint32_t sent, got; /* bytes of the current message */
    int want_out;       /* EPOLLOUT is registered (a partial send) */
    uint64_t t0;        /* when its first byte went to send() */
} conn;

static conn *conns;
static int nconns;
static int ports[ECHO_MAX_PORTS], nports;

/* Opens nconns connections. Connection i goes to ports[i % nports]; with
 * naddrs > 0 it binds first to 127.0.0.(2 + (i / nports) % naddrs), with
 * IP_BIND_ADDRESS_NO_PORT so that the port is picked at connect time per
 * 4-tuple. At most 512 connects are in flight at once: the server's accept
 * queue (listen backlog) is not overrun, which would cost SYN retransmits
 * of a second each. */
static void connect_all(int naddrs) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    int next = 0, inflight = 0, done = 0;
    struct epoll_event evs[512];
    while (done < nconns) {
        while (next < nconns && inflight < 512) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) die("socket");
            struct sockaddr_in a;
            memset(&a, 0, sizeof a);
            a.sin_family = AF_INET;
            if (naddrs > 0) {
                int one = 1;
                (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                a.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)((next / nports) % naddrs));
                if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
            }
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons((unsigned short)ports[next % nports]);
            conns[next].fd = fd;
            if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
                done++;
            } else if (errno == EINPROGRESS) {
                struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)next};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
                inflight++;
            } else {
                die("connect");
            }
            next++;
        }
        if (inflight == 0) continue;
        int n = epoll_wait(ep, evs, 512, 10000);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        if (n == 0) {
            fprintf(stderr, "echo client: connects stalled (%d of %d done)\n", done, nconns);
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            int fd = conns[evs[i].data.u32].fd;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                errno = err;
                die("connect");
            }
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            inflight--;
            done++;
        }
    }
    close(ep);
    for (int i = 0; i < nconns; i++) {
        int one = 1;
        (void)setsockopt(conns[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

/* ---- load mode ------------------------------------------------------------------ */
static int ep;
static char *msg, *scratch;
static uint32_t size;
static uint64_t messages;

static void set_out(conn *c, int on) {
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl");
    c->want_out = on;
}

/* Sends what is left of the current message; the rest waits for EPOLLOUT. */
static void send_more(conn *c) {
    if (c->sent == 0) c->t0 = now_ns();
    while (c->sent < size) {
        ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            die("send");
        }
        c->sent += (uint32_t)n;
    }
    set_out(c, c->sent < size);
}

static void on_readable(conn *c) {
    ssize_t n = recv(c->fd, scratch, size - c->got, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        die("recv");
    }
    if (n == 0) {
        fprintf(stderr, "echo client: the server closed a connection\n");
        exit(1);
    }
    c->got += (uint32_t)n;
    if (c->got < size) return;
    /* A message is done only once all of it came back, which also means all
     * of it was sent. The next one starts at once. */
    hist_add(now_ns() - c->t0);
    messages++;
    c->got = 0;
    c->sent = 0;
    send_more(c);
}

/* Runs the loop until the deadline or until messages reaches max_msgs. */
static void pump(uint64_t until, uint64_t max_msgs) {
    struct epoll_event evs[512];
    while (now_ns() < until && messages < max_msgs) {
        int n = epoll_wait(ep, evs, 512, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn *c = &conns[evs[i].data.u32];
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
            if ((evs[i].events & EPOLLOUT) && c->sent < size) send_more(c);
        }
    }
}

static int ctl_fd = -1, ack_fd = -1;

/* Sends a command to perf's control FIFO and waits for its "ack". */
static void perf_ctl(const char *cmd) {
    if (ctl_fd < 0) return;
    if (write(ctl_fd, cmd, strlen(cmd)) < 0) die("write perf control fifo");
    char buf[16];
    if (ack_fd >= 0 && read(ack_fd, buf, sizeof buf) <= 0) die("read perf ack fifo");
}

static const char *prefix = "";
static void figure(const char *name, double v, const char *unit) {
    printf("%s%s%s %.*f %s\n", prefix, *prefix ? "_" : "", name, v == floor(v) ? 0 : 3, v,
           unit);
}

static void load_mode(double warmup, double duration, uint64_t max_msgs) {
    msg = malloc(size);
    scratch = malloc(size);
    if (!msg || !scratch) die("malloc");
    for (uint32_t i = 0; i < size; i++) msg[i] = (char)('a' + i % 26);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0) die("epoll_ctl");
    }
    for (int i = 0; i < nconns; i++) send_more(&conns[i]);

    pump(now_ns() + (uint64_t)(warmup * 1e9), UINT64_MAX);
    /* The window starts here: the histogram and the count start afresh,
     * with every connection's message already in flight. */
    memset(hist, 0, sizeof hist);
    hist_total = 0;
    messages = 0;
    perf_ctl("enable\n");
    double cpu0 = server_pid ? server_cpu_us() : 0;
    uint64_t t0 = now_ns();
    pump(max_msgs ? UINT64_MAX : t0 + (uint64_t)(duration * 1e9), max_msgs ? max_msgs : UINT64_MAX);
    uint64_t t1 = now_ns();
    double cpu1 = server_pid ? server_cpu_us() : 0;
    uint64_t done = messages;
    perf_ctl("disable\n");

    double secs = (double)(t1 - t0) / 1e9;
    figure("messages", (double)done, "msg");
    figure("seconds", secs, "s");
    figure("msgs_per_sec", done / secs, "msg/s");
    figure("p50_us", hist_percentile(0.50) / 1e3, "us");
    figure("p99_us", hist_percentile(0.99) / 1e3, "us");
    if (server_pid && cpu0 >= 0 && cpu1 >= 0 && done > 0)
        figure("server_cpu_us_per_msg", (cpu1 - cpu0) / (double)done, "us");
}

/* ---- idle mode -------------------------------------------------------------------- */
static void idle_mode(int naddrs, double hold) {
    long fds0 = server_pid ? server_fd_count() : -1;
    long rss0 = server_pid ? server_rss_kb() : -1;
    uint64_t t0 = now_ns();
    connect_all(naddrs);
    double connect_s = (double)(now_ns() - t0) / 1e9;

    /* One byte each way on every connection: its echo proves the server
     * accepted the connection and serves it. */
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0) die("epoll_ctl");
        if (send(conns[i].fd, "x", 1, MSG_NOSIGNAL) != 1) die("send");
    }
    int echoed = 0;
    struct epoll_event evs[512];
    while (echoed < nconns) {
        int n = epoll_wait(ep, evs, 512, 30000);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        if (n == 0) {
            fprintf(stderr, "echo client: only %d of %d connections echoed\n", echoed, nconns);
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            char b;
            int fd = conns[evs[i].data.u32].fd;
            ssize_t r = recv(fd, &b, 1, 0);
            if (r == 1) {
                echoed++;
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                fprintf(stderr, "echo client: a connection failed before its echo\n");
                exit(1);
            }
        }
    }
    close(ep);
    if (hold > 0) usleep((useconds_t)(hold * 1e6));
    long rss1 = server_pid ? server_rss_kb() : -1;

    for (int i = 0; i < nconns; i++) close(conns[i].fd);
    /* The server notices each close at its own pace; wait (up to a minute)
     * until its descriptor count is back where it was. */
    int flat = 0;
    if (server_pid && fds0 >= 0) {
        for (int i = 0; i < 600 && !flat; i++) {
            long f = server_fd_count();
            flat = f >= 0 && f <= fds0;
            if (!flat) usleep(100000);
        }
        if (hold > 0) usleep((useconds_t)(hold * 1e6));
    }
    long rss2 = server_pid ? server_rss_kb() : -1;

    figure("idle_conns", nconns, "conns");
    figure("idle_connect_seconds", connect_s, "s");
    if (server_pid && rss0 >= 0 && rss1 >= 0 && rss2 >= 0) {
        figure("idle_rss_before_kb", (double)rss0, "kB");
        figure("idle_rss_held_kb", (double)rss1, "kB");
        figure("idle_rss_closed_kb", (double)rss2, "kB");
        figure("idle_bytes_per_conn", (double)(rss1 - rss0) * 1024 / nconns, "B");
        figure("idle_bytes_left_per_conn", (double)(rss2 - rss0) * 1024 / nconns, "B");
        if (!flat) printf("# the server still held descriptors a minute after the close\n");
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: client -p PORT[,PORT...] [-c CONNS] [-s BYTES] [-w WARMUP_S] [-d SECONDS]\n"
            "              [-n MESSAGES] [-P SERVER_PID] [-C CTL_FIFO,ACK_FIFO] [-x PREFIX]\n"
            "       client -i CONNS -p PORT[,PORT...] [-a SOURCE_ADDRS] [-H HOLD_S] [-P PID]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int idle = 0, naddrs = 0;
    double warmup = 0.5, duration = 2, hold = 0.5;
    uint64_t max_msgs = 0;
    char *ctl = NULL;
    nconns = 1;
    size = 64;
    nports = 0;
    int opt;
    while ((opt = getopt(argc, argv, "p:c:s:w:d:n:P:C:x:i:a:H:")) != -1) {
        switch (opt) {
        case 'p': nports = echo_parse_ports(optarg, ports, ECHO_MAX_PORTS); break;
        case 'c': nconns = atoi(optarg); break;
        case 's': size = (uint32_t)atoi(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'n': max_msgs = strtoull(optarg, NULL, 10); break;
        case 'P': server_pid = atoi(optarg); break;
        case 'C': ctl = optarg; break;
        case 'x': prefix = optarg; break;
        case 'i': idle = 1; nconns = atoi(optarg); break;
        case 'a': naddrs = atoi(optarg); break;
        case 'H': hold = atof(optarg); break;
        default: usage();
        }
    }
    if (nports <= 0 || nconns <= 0 || size == 0 || size > (1u << 24) || warmup < 0 ||
        duration <= 0 || naddrs < 0 || naddrs > 250)
        usage();
    echo_raise_nofile((rlim_t)nconns + 64);
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) die("calloc");
    if (ctl) {
        char *comma = strchr(ctl, ',');
        if (comma) *comma = '\0';
        ctl_fd = open(ctl, O_WRONLY | O_CLOEXEC);
        if (ctl_fd < 0) die("open perf control fifo");
        if (comma) {
            ack_fd = open(comma + 1, O_RDONLY | O_CLOEXEC);
            if (ack_fd < 0) die("open perf ack fifo");
        }
    }
    if (idle) {
        /* At most 20,000 connections per source address and port, well
         * inside the 28,232 ephemeral ports of the default range. */
        int need = (nconns + nports * 20000 - 1) / (nports * 20000);
        if (naddrs < need) naddrs = need;
        idle_mode(naddrs, hold);
    } else {
        connect_all(naddrs);
        load_mode(warmup, duration, max_msgs);
    }
    return 0;
}
