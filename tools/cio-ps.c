/*
 * cio-ps: lists the tasks of a running cio program from outside, without
 * stopping it.
 *
 *     cio-ps [--tree] [--retry-ms=N] PID
 *
 * For each loop of the process it prints every task that is not done: its
 * id, name, state, spawn site and parent, what it waits on, and the frames
 * of a suspended task's stack, symbolized from the ELF symbol tables of the
 * files the process has mapped. --tree prints the tasks as a tree of
 * parents and children instead.
 *
 * How it finds them. cio puts an offsets table in an ELF section of its
 * own, .cio_debug (src/core/debug_table.c). cio-ps looks for that section
 * in every file the process maps (the program, or libcio.so), reads the
 * table at its loaded address through process_vm_readv (or /proc/PID/mem),
 * and walks from it: the live-loop table, each loop's list of futures, the
 * tasks among them, their wait records and their saved stack pointers.
 *
 * Torn reads. The program runs on while cio-ps reads it. Each loop's
 * debug_gen is odd while its list changes; cio-ps reads it before and after
 * walking that loop and walks again if it was odd or moved, for up to a
 * quarter of a second (--retry-ms). A read that faults (memory freed meanwhile) counts as a torn walk
 * too. A loop that never held still is reported as "retry exhausted" and
 * the exit status is 3; nothing is ever printed from a torn walk. A task's
 * frames are read in the same walk, so they are as consistent as its list
 * (a task that ran meanwhile shows the frames of one of its suspensions).
 *
 * Exit status: 0, 1 for a bad command line, 2 when the process cannot be
 * read or has no cio table, 3 when a loop's walk was retried to no avail.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The table's layout, version 1 (src/core/debug_table.h): all uint64_t. */
enum {
    T_MAGIC, T_VERSION, T_SIZE, T_ARCH, T_REGISTRY,
    T_REG_CHUNKS, T_REG_COUNT, T_REG_CHUNK_SLOTS, T_REG_MAX_CHUNKS, T_REG_SLOT_SIZE,
    T_REG_SLOT_LOOP,
    T_LOOP_FUTURES, T_LOOP_GEN, T_LOOP_ITERATIONS, T_LOOP_NOW, T_LOOP_CLOSING,
    T_LOOP_LIVE_TASKS,
    T_FUT_LINK, T_FUT_STATE, T_FUT_KIND, T_KIND_TASK, T_STATE_PENDING,
    T_TASK_FUT, T_TASK_ID, T_TASK_PARENT, T_TASK_NUMBER, T_TASK_NAME, T_TASK_NAME_BUF,
    T_TASK_SITE, T_TASK_PC, T_TASK_RUN_STATE, T_TASK_WAIT, T_TASK_SP, T_TASK_STACK_LO,
    T_TASK_STACK_SIZE, T_TASK_SWITCHES, T_TASK_STARTED, T_TASK_CANCELS,
    T_WAIT_WHAT, T_WAIT_FUTURE, T_WAIT_DEADLINE,
    T_FRAME_FP, T_FRAME_PC, T_FRAME_SP_AFTER,
    T_FIELDS
};

#define MAX_FRAMES 64
#define MAX_TASKS_PER_LOOP 1000000

static pid_t pid;
static long retry_ms = 250;
static int mem_fd = -1;
static uint64_t tab[T_FIELDS];

/* ---- reading the other process ------------------------------------------ */

/* Reads len bytes at addr: 0, or -1 if any of it cannot be read. */
static int peek(uint64_t addr, void *buf, size_t len) {
    struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n == (ssize_t)len) return 0;
    if (n < 0 && errno != ENOSYS && errno != EPERM) return -1;
    /* Without process_vm_readv (or refused for it), /proc/PID/mem. */
    if (mem_fd < 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
        mem_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (mem_fd < 0) return -1;
    }
    return pread(mem_fd, buf, len, (off_t)addr) == (ssize_t)len ? 0 : -1;
}

static int peek_u64(uint64_t addr, uint64_t *out) {
    return peek(addr, out, sizeof *out);
}

static int peek_u8(uint64_t addr, uint8_t *out) {
    return peek(addr, out, 1);
}

/* A string of at most cap - 1 bytes; "" when it cannot be read. */
static void peek_string(uint64_t addr, char *out, size_t cap) {
    out[0] = '\0';
    if (!addr) return;
    /* Byte by byte near a page end would be slow; read in pieces that do
     * not cross one, so a short string at the end of a mapping reads. */
    size_t n = 0;
    while (n + 1 < cap) {
        size_t room = 4096 - ((addr + n) & 4095);
        size_t want = cap - 1 - n < room ? cap - 1 - n : room;
        if (peek(addr + n, out + n, want) < 0) break;
        size_t i;
        for (i = 0; i < want && out[n + i]; i++) {}
        n += i;
        if (i < want) break;
    }
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) out[i] = '?';
}

/* ---- the mapped files and their symbols ----------------------------------- */

typedef struct mapping {
    uint64_t start, end, offset;
    char path[512];
} mapping;

typedef struct elf_file {
    char path[512];
    const unsigned char *data;
    size_t size;
    const Elf64_Sym *syms;
    size_t nsyms;
    const char *strtab;
    const Elf64_Sym **funcs; /* the function symbols, by address */
    size_t nfuncs;
    uint64_t table_vaddr; /* .cio_debug, or 0 */
} elf_file;

static mapping *maps;
static size_t nmaps;
static elf_file *files;
static size_t nfiles;

static int read_maps(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    char line[1024];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long start, end, offset;
        char perms[8], file[512] = "";
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %511[^\n]", &start, &end, perms, &offset,
                   file) < 4)
            continue;
        if (file[0] != '/') continue;
        if (nmaps == cap) {
            cap = cap ? cap * 2 : 64;
            mapping *grown = realloc(maps, cap * sizeof *grown);
            if (!grown) break;
            maps = grown;
        }
        mapping *m = &maps[nmaps++];
        m->start = start;
        m->end = end;
        m->offset = offset;
        snprintf(m->path, sizeof m->path, "%s", file);
    }
    fclose(f);
    return 0;
}

static int by_address(const void *a, const void *b) {
    const Elf64_Sym *x = *(const Elf64_Sym *const *)a, *y = *(const Elf64_Sym *const *)b;
    return x->st_value < y->st_value ? -1 : x->st_value > y->st_value;
}

/* Sorts a file's function symbols by address once, so that each frame is
 * a binary search (a static test program has thousands of symbols). */
static void index_functions(elf_file *e) {
    e->funcs = malloc(e->nsyms * sizeof *e->funcs);
    if (!e->funcs) return;
    for (size_t i = 0; i < e->nsyms; i++) {
        const Elf64_Sym *sym = &e->syms[i];
        if (ELF64_ST_TYPE(sym->st_info) == STT_FUNC && sym->st_value != 0)
            e->funcs[e->nfuncs++] = sym;
    }
    qsort(e->funcs, e->nfuncs, sizeof *e->funcs, by_address);
}

/* Maps an ELF file and finds its symbol table and .cio_debug section. */
static elf_file *load_file(const char *path) {
    for (size_t i = 0; i < nfiles; i++)
        if (strcmp(files[i].path, path) == 0) return files[i].data ? &files[i] : NULL;
    elf_file *grown = realloc(files, (nfiles + 1) * sizeof *grown);
    if (!grown) return NULL;
    files = grown;
    elf_file *e = &files[nfiles++];
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(Elf64_Ehdr)) {
        close(fd);
        return NULL;
    }
    void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) return NULL;
    const Elf64_Ehdr *eh = data;
    size_t size = (size_t)st.st_size;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
        eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > size ||
        eh->e_shstrndx >= eh->e_shnum) {
        munmap(data, size);
        return NULL;
    }
    e->data = data;
    e->size = size;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(e->data + eh->e_shoff);
    const Elf64_Shdr *names = &sh[eh->e_shstrndx];
    const Elf64_Shdr *symtab = NULL, *dynsym = NULL;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type == SHT_SYMTAB) symtab = &sh[i];
        if (sh[i].sh_type == SHT_DYNSYM) dynsym = &sh[i];
        if (names->sh_offset + sh[i].sh_name < size &&
            strncmp((const char *)e->data + names->sh_offset + sh[i].sh_name, ".cio_debug",
                    size - names->sh_offset - sh[i].sh_name) == 0)
            e->table_vaddr = sh[i].sh_addr;
    }
    const Elf64_Shdr *use = symtab ? symtab : dynsym;
    if (use && use->sh_link < eh->e_shnum && use->sh_offset + use->sh_size <= size &&
        sh[use->sh_link].sh_offset + sh[use->sh_link].sh_size <= size) {
        e->syms = (const Elf64_Sym *)(e->data + use->sh_offset);
        e->nsyms = use->sh_size / sizeof(Elf64_Sym);
        e->strtab = (const char *)e->data + sh[use->sh_link].sh_offset;
        index_functions(e);
    }
    return e;
}

/* The load bias of a file: where its vaddr 0 is in the process. */
static int file_bias(const elf_file *e, const char *path, uint64_t *bias) {
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)e->data;
    if (eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > e->size) return -1;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(e->data + eh->e_phoff);
    for (size_t m = 0; m < nmaps; m++) {
        if (strcmp(maps[m].path, path) != 0) continue;
        for (unsigned i = 0; i < eh->e_phnum; i++) {
            if (ph[i].p_type != PT_LOAD) continue;
            uint64_t page_off = ph[i].p_offset & ~(uint64_t)4095;
            if (page_off != maps[m].offset) continue;
            *bias = maps[m].start - (ph[i].p_vaddr & ~(uint64_t)4095);
            return 0;
        }
    }
    return -1;
}

/* "function+0xoff (file)" for a code address, or just the address. */
static void symbolize(uint64_t pc, char *out, size_t cap) {
    snprintf(out, cap, "?");
    for (size_t m = 0; m < nmaps; m++) {
        if (pc < maps[m].start || pc >= maps[m].end) continue;
        const char *base = strrchr(maps[m].path, '/');
        base = base ? base + 1 : maps[m].path;
        elf_file *e = load_file(maps[m].path);
        uint64_t bias;
        if (!e || file_bias(e, maps[m].path, &bias) < 0) {
            snprintf(out, cap, "(%.80s+0x%llx)", base,
                     (unsigned long long)(pc - maps[m].start + maps[m].offset));
            return;
        }
        uint64_t vaddr = pc - bias;
        /* The last function that starts at or below vaddr. */
        const Elf64_Sym *best = NULL;
        size_t lo = 0, hi = e->nfuncs;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (e->funcs[mid]->st_value <= vaddr) lo = mid + 1;
            else hi = mid;
        }
        if (lo > 0) best = e->funcs[lo - 1];
        if (best && (best->st_size == 0 || vaddr < best->st_value + best->st_size) &&
            (const unsigned char *)e->strtab + best->st_name < e->data + e->size)
            snprintf(out, cap, "%.120s+0x%llx (%.80s)", e->strtab + best->st_name,
                     (unsigned long long)(vaddr - best->st_value), base);
        else
            snprintf(out, cap, "(%.80s+0x%llx)", base, (unsigned long long)vaddr);
        return;
    }
}

/* Finds the table in some mapped file and reads it. */
static int find_table(void) {
    for (size_t m = 0; m < nmaps; m++) {
        if (maps[m].offset != 0) continue;
        elf_file *e = load_file(maps[m].path);
        if (!e || !e->table_vaddr) continue;
        uint64_t bias;
        if (file_bias(e, maps[m].path, &bias) < 0) continue;
        uint64_t addr = e->table_vaddr + bias;
        uint64_t t[T_FIELDS];
        if (peek(addr, t, sizeof t) < 0) continue;
        if (memcmp(&t[T_MAGIC], "ciodebug", 8) != 0 || t[T_VERSION] != 1 ||
            t[T_SIZE] < sizeof t)
            continue;
        memcpy(tab, t, sizeof tab);
        return 0;
    }
    return -1;
}

/* ---- one loop's tasks ------------------------------------------------------ */

typedef struct task_view {
    uint64_t addr, id, parent, switches, wait_deadline, awaited_task;
    int64_t started;
    uint8_t run_state;
    int cancels;
    char name[64], site[160], what[32];
    uint64_t frames[MAX_FRAMES];
    int nframes;
} task_view;

static task_view *views;
static size_t views_cap;

/* A field of the task block read below. */
static uint64_t block_u64(const unsigned char *block, uint64_t off) {
    uint64_t v;
    memcpy(&v, block + off, sizeof v);
    return v;
}

/* Reads one task; -1 if any of it cannot be read (a torn walk). The task's
 * fields come in one read of the block that spans them, so a walk costs a
 * few system calls per task and has a chance to finish between two changes
 * of a busy program's task list. */
static int read_task(uint64_t task, task_view *v) {
    memset(v, 0, sizeof *v);
    v->addr = task;
    static const int fields[] = {T_TASK_ID, T_TASK_PARENT, T_TASK_NUMBER, T_TASK_NAME,
                                 T_TASK_SITE, T_TASK_PC, T_TASK_RUN_STATE, T_TASK_WAIT,
                                 T_TASK_SP, T_TASK_STACK_LO, T_TASK_STACK_SIZE,
                                 T_TASK_SWITCHES, T_TASK_STARTED, T_TASK_CANCELS};
    uint64_t span = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (tab[fields[i]] + 8 > span) span = tab[fields[i]] + 8;
    unsigned char block[1024];
    if (span > sizeof block || peek(task, block, span) < 0) return -1;
    v->id = block_u64(block, tab[T_TASK_ID]);
    v->parent = block_u64(block, tab[T_TASK_PARENT]);
    uint64_t number = block_u64(block, tab[T_TASK_NUMBER]);
    uint64_t name = block_u64(block, tab[T_TASK_NAME]);
    uint64_t site = block_u64(block, tab[T_TASK_SITE]);
    uint64_t pc = block_u64(block, tab[T_TASK_PC]);
    v->run_state = block[tab[T_TASK_RUN_STATE]];
    uint64_t wait = block_u64(block, tab[T_TASK_WAIT]);
    uint64_t sp = block_u64(block, tab[T_TASK_SP]);
    uint64_t lo = block_u64(block, tab[T_TASK_STACK_LO]);
    uint64_t size = block_u64(block, tab[T_TASK_STACK_SIZE]);
    v->switches = block_u64(block, tab[T_TASK_SWITCHES]);
    uint64_t started = block_u64(block, tab[T_TASK_STARTED]);
    int32_t cancels;
    memcpy(&cancels, block + tab[T_TASK_CANCELS], sizeof cancels);
    v->started = (int64_t)started;
    v->cancels = cancels;
    if (name) peek_string(name, v->name, sizeof v->name);
    else snprintf(v->name, sizeof v->name, "Task-%llu", (unsigned long long)number);
    if (site) peek_string(site, v->site, sizeof v->site);
    else if (pc) symbolize(pc, v->site, sizeof v->site);
    if (v->run_state == 2 && wait) {
        uint64_t what = 0, fut = 0;
        if (peek_u64(wait + tab[T_WAIT_WHAT], &what) < 0 ||
            peek_u64(wait + tab[T_WAIT_FUTURE], &fut) < 0 ||
            peek_u64(wait + tab[T_WAIT_DEADLINE], &v->wait_deadline) < 0)
            return -1;
        peek_string(what, v->what, sizeof v->what);
        uint8_t kind = 0;
        if (fut && peek_u8(fut + tab[T_FUT_KIND], &kind) == 0 && kind == tab[T_KIND_TASK])
            peek_u64(fut - tab[T_TASK_FUT] + tab[T_TASK_ID], &v->awaited_task);
    }
    /* Frames of a suspended task: the switch's return address, then the
     * frame-pointer chain, kept inside the task's stack and going up. */
    if (v->run_state == 2 && sp >= lo && sp < lo + size) {
        uint64_t fp, ret;
        if (peek_u64(sp + tab[T_FRAME_PC], &ret) < 0 || peek_u64(sp + tab[T_FRAME_FP], &fp) < 0)
            return -1;
        v->frames[v->nframes++] = ret;
        uint64_t low = sp + tab[T_FRAME_SP_AFTER];
        while (v->nframes < MAX_FRAMES && fp >= low && fp + 16 <= lo + size && !(fp & 7)) {
            uint64_t next;
            if (peek_u64(fp, &next) < 0 || peek_u64(fp + 8, &ret) < 0 || ret == 0) break;
            v->frames[v->nframes++] = ret;
            if (next <= fp) break;
            low = fp + 16;
            fp = next;
        }
    }
    return 0;
}

/* Walks one loop's futures into views[]: the number of tasks, or -1 for a
 * torn walk. */
static long walk_loop(uint64_t loop) {
    uint64_t head = loop + tab[T_LOOP_FUTURES], link;
    if (peek_u64(head, &link) < 0) return -1;
    long n = 0;
    for (long steps = 0; link != head; steps++) {
        if (steps > MAX_TASKS_PER_LOOP * 4L || !link) return -1;
        uint64_t fut = link - tab[T_FUT_LINK];
        uint8_t kind, state;
        if (peek_u8(fut + tab[T_FUT_KIND], &kind) < 0 || peek_u8(fut + tab[T_FUT_STATE], &state) < 0)
            return -1;
        if (kind == tab[T_KIND_TASK] && state == tab[T_STATE_PENDING]) {
            if ((size_t)n == views_cap) {
                size_t cap = views_cap ? views_cap * 2 : 256;
                task_view *grown = realloc(views, cap * sizeof *grown);
                if (!grown) return -1;
                views = grown;
                views_cap = cap;
            }
            if (read_task(fut - tab[T_TASK_FUT], &views[n]) < 0) return -1;
            n++;
        }
        if (peek_u64(link, &link) < 0) return -1;
    }
    return n;
}

static const char *state_name(uint8_t s) {
    static const char *const names[] = {"scheduled", "running", "waiting", "finished"};
    return s < 4 ? names[s] : "?";
}

static void print_wait(const task_view *v, int64_t now, const char *indent) {
    if (v->run_state != 2) return;
    printf("%swait: %s", indent, v->what[0] ? v->what : "?");
    if (v->awaited_task) printf(" task %llu", (unsigned long long)v->awaited_task);
    if (v->wait_deadline != (uint64_t)INT64_MAX)
        printf(" deadline=%+.3fs", (double)((int64_t)v->wait_deadline - now) / 1e9);
    printf("\n");
}

static void print_task(const task_view *v, int64_t now) {
    printf("task %llu \"%s\" %s switches=%llu spawned=%s parent=%llu", (unsigned long long)v->id,
           v->name, state_name(v->run_state), (unsigned long long)v->switches,
           v->site[0] ? v->site : "?", (unsigned long long)v->parent);
    if (v->cancels) printf(" cancel_requests=%d", v->cancels);
    printf("\n");
    print_wait(v, now, "  ");
    for (int i = 0; i < v->nframes; i++) {
        char sym[256];
        symbolize(v->frames[i], sym, sizeof sym);
        printf("  #%d 0x%016llx %s\n", i, (unsigned long long)v->frames[i], sym);
    }
}

static void print_subtree(long n, uint64_t parent, int depth, int64_t now) {
    for (long i = 0; i < n; i++) {
        if (views[i].parent != parent || views[i].id == parent) continue;
        printf("%*s%s %llu \"%s\" %s", depth * 4, "", depth ? "└──" : "(T)",
               (unsigned long long)views[i].id, views[i].name, state_name(views[i].run_state));
        if (views[i].run_state == 2) {
            printf("  [%s", views[i].what[0] ? views[i].what : "?");
            if (views[i].awaited_task)
                printf(" task %llu", (unsigned long long)views[i].awaited_task);
            printf("]");
        }
        printf("\n");
        if (depth < 64) print_subtree(n, views[i].id, depth + 1, now);
    }
}

static void print_tree(long n, int64_t now) {
    /* Roots: tasks whose parent is not among the live tasks. */
    for (long i = 0; i < n; i++) {
        int has_parent = 0;
        for (long j = 0; j < n && !has_parent; j++) has_parent = views[j].id == views[i].parent;
        if (has_parent) continue;
        printf("(T) %llu \"%s\" %s", (unsigned long long)views[i].id, views[i].name,
               state_name(views[i].run_state));
        if (views[i].run_state == 2) printf("  [%s]", views[i].what[0] ? views[i].what : "?");
        printf("\n");
        print_subtree(n, views[i].id, 1, now);
    }
}

int main(int argc, char **argv) {
    int tree = 0;
    const char *pid_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tree") == 0) tree = 1;
        else if (strncmp(argv[i], "--retry-ms=", 11) == 0 && atol(argv[i] + 11) > 0)
            retry_ms = atol(argv[i] + 11);
        else if (argv[i][0] != '-' && !pid_arg) pid_arg = argv[i];
        else {
            fprintf(stderr, "usage: cio-ps [--tree] [--retry-ms=N] PID\n");
            return 1;
        }
    }
    char *end;
    long p = pid_arg ? strtol(pid_arg, &end, 10) : 0;
    if (!pid_arg || *end || p <= 0) {
        fprintf(stderr, "usage: cio-ps [--tree] [--retry-ms=N] PID\n");
        return 1;
    }
    pid = (pid_t)p;
    if (read_maps() < 0) {
        fprintf(stderr, "cio-ps: cannot read /proc/%d/maps: %s\n", (int)pid, strerror(errno));
        return 2;
    }
    if (find_table() < 0) {
        fprintf(stderr, "cio-ps: process %d has no readable cio offsets table (.cio_debug): "
                        "not a cio program, or not readable (ptrace permission)\n", (int)pid);
        return 2;
    }
    uint64_t reg = tab[T_REGISTRY], chunks, count_addr, chunk_slots, max_chunks, slot_size,
             slot_loop;
    uint32_t count;
    if (peek_u64(reg + tab[T_REG_CHUNKS], &chunks) < 0 ||
        peek_u64(reg + tab[T_REG_COUNT], &count_addr) < 0 ||
        peek_u64(reg + tab[T_REG_CHUNK_SLOTS], &chunk_slots) < 0 ||
        peek_u64(reg + tab[T_REG_MAX_CHUNKS], &max_chunks) < 0 ||
        peek_u64(reg + tab[T_REG_SLOT_SIZE], &slot_size) < 0 ||
        peek_u64(reg + tab[T_REG_SLOT_LOOP], &slot_loop) < 0 ||
        peek(count_addr, &count, sizeof count) < 0 || chunk_slots == 0) {
        fprintf(stderr, "cio-ps: cannot read the loop table of process %d\n", (int)pid);
        return 2;
    }
    int status = 0, loops = 0;
    printf("cio-ps 1 pid=%d\n", (int)pid);
    for (uint64_t i = 0; i < count && i / chunk_slots < max_chunks; i++) {
        uint64_t chunk, loop;
        if (peek_u64(chunks + (i / chunk_slots) * 8, &chunk) < 0 || !chunk) continue;
        if (peek_u64(chunk + (i % chunk_slots) * slot_size + slot_loop, &loop) < 0 || !loop)
            continue;
        long n = -1;
        uint64_t gen = 0, iterations = 0, now = 0;
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int attempt = 0; n < 0; attempt++) {
            uint64_t after;
            if (attempt) {
                clock_gettime(CLOCK_MONOTONIC, &t);
                if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= retry_ms)
                    break;
                nanosleep(&(struct timespec){0, 100000}, NULL);
            }
            if (peek_u64(loop + tab[T_LOOP_GEN], &gen) < 0) break;
            if (gen & 1) continue;
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            n = walk_loop(loop);
            peek_u64(loop + tab[T_LOOP_ITERATIONS], &iterations);
            peek_u64(loop + tab[T_LOOP_NOW], &now);
            if (peek_u64(loop + tab[T_LOOP_GEN], &after) < 0 || after != gen) n = -1;
        }
        loops++;
        if (n < 0) {
            printf("loop 0x%llx: retry exhausted (its task list kept changing while read)\n",
                   (unsigned long long)loop);
            status = 3;
            continue;
        }
        printf("loop 0x%llx tasks=%ld iterations=%llu gen=%llu\n", (unsigned long long)loop, n,
               (unsigned long long)iterations, (unsigned long long)gen);
        if (tree) print_tree(n, (int64_t)now);
        else
            for (long t = 0; t < n; t++) print_task(&views[t], (int64_t)now);
    }
    printf("loops=%d\n", loops);
    return status;
}
