/*
 * Names for functions that dladdr cannot name: cio's own hidden and static
 * functions (the library is built with -fvisibility=hidden, and a static
 * function is never in the dynamic symbol table), and a program's static
 * functions. The task dump and the watchdog use it through
 * cio__code_lookup (dump.c) when dladdr finds the object but no symbol
 * covering the address.
 *
 * How. The full symbol table (.symtab, with its .strtab) stays in the file
 * unless the file was stripped. For an address, dl_iterate_phdr finds the
 * loaded object whose PT_LOAD segment holds it, with its load bias and its
 * file (the main program's is /proc/self/exe, which names the running
 * file even after a rebuild replaced it on disk). The first look-up in an
 * object maps the file, checks that its build id is the loaded one's (a
 * library rebuilt under the same path must not lend its names), and keeps
 * the function symbols in one array sorted by address, with their names
 * copied into one pool; then the mapping goes. Later look-ups are a binary
 * search. An object without a usable table is remembered as such, so its
 * file is read once whatever the answer.
 *
 * Threads and signals. The dump runs on a loop thread and the watchdog on
 * its own thread, so one mutex guards the table of objects (a child of
 * fork gets it fresh). Loading allocates and reads a file: never call this
 * from a signal handler. Neither caller does: the watchdog's handler only
 * collects return addresses, and the dump's raw mode (CIO__DUMP_RAW) names
 * nothing.
 */
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "introspection.h"

#if __ELF_NATIVE_CLASS == 64
#define NATIVE_CLASS ELFCLASS64
#else
#define NATIVE_CLASS ELFCLASS32
#endif

typedef struct sym {
    uintptr_t lo;   /* run-time address */
    uintptr_t size; /* 0: up to the next symbol (an assembly function without .size) */
    uint32_t name;  /* offset in the object's name pool */
} sym;

typedef struct object {
    uintptr_t bias; /* the load bias: run-time address = bias + st_value */
    char *path;     /* as dl_iterate_phdr gave it ("" for the main program) */
    sym *syms;      /* sorted by lo; NULL when the file has no usable table */
    size_t n;
    char *names;
} object;

/* Objects are few (the program and its libraries); one past the last
 * slot is not cached and looks nothing up. */
#define MAX_OBJECTS 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static object objects[MAX_OBJECTS];
static size_t object_count;

static void in_forked_child(void) {
    /* Another thread may have held the lock at the fork. */
    pthread_mutex_init(&lock, NULL);
}

static void init_once(void) {
    (void)pthread_atfork(NULL, NULL, in_forked_child);
}

/* ---- which object holds an address ------------------------------------- */

typedef struct found_object {
    uintptr_t at;
    int found;
    uintptr_t bias;
    const char *path;
    const ElfW(Phdr) *phdr;
    size_t phnum;
} found_object;

static int holds(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    found_object *f = arg;
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + p->p_vaddr;
        if (f->at >= lo && f->at - lo < p->p_memsz) {
            f->found = 1;
            f->bias = info->dlpi_addr;
            f->path = info->dlpi_name ? info->dlpi_name : "";
            f->phdr = info->dlpi_phdr;
            f->phnum = info->dlpi_phnum;
            return 1;
        }
    }
    return 0;
}

/* ---- build ids ------------------------------------------------------------ */

/* The GNU build id in a block of ELF notes: its bytes and length, or 0. */
static size_t note_build_id(const unsigned char *p, size_t len, const unsigned char **id) {
    size_t at = 0;
    while (len - at >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) nh;
        memcpy(&nh, p + at, sizeof nh);
        size_t name_len = ((size_t)nh.n_namesz + 3) & ~(size_t)3;
        size_t desc_len = ((size_t)nh.n_descsz + 3) & ~(size_t)3;
        size_t body = at + sizeof nh;
        if (name_len > len - body || desc_len > len - body - name_len) return 0;
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(p + body, "GNU", 4) == 0) {
            *id = p + body + name_len;
            return nh.n_descsz;
        }
        at = body + name_len + desc_len;
    }
    return 0;
}

/* The loaded object's build id, from its PT_NOTE segments. */
static size_t loaded_build_id(const found_object *f, const unsigned char **id) {
    for (size_t i = 0; i < f->phnum; i++) {
        const ElfW(Phdr) *p = &f->phdr[i];
        if (p->p_type != PT_NOTE) continue;
        size_t n = note_build_id((const unsigned char *)(f->bias + p->p_vaddr), p->p_filesz, id);
        if (n) return n;
    }
    return 0;
}

/* ---- reading a file's table ----------------------------------------------- */

static int by_address(const void *x, const void *y) {
    const sym *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Section header i of the mapped file, or NULL when it lies outside. */
static const ElfW(Shdr) *section(const unsigned char *file, size_t size, const ElfW(Ehdr) *eh,
                                 size_t i) {
    if (i >= eh->e_shnum) return NULL;
    size_t at = eh->e_shoff + i * sizeof(ElfW(Shdr));
    if (at > size || size - at < sizeof(ElfW(Shdr))) return NULL;
    return (const ElfW(Shdr) *)(file + at);
}

static int inside(const ElfW(Shdr) *s, size_t size) {
    return s->sh_offset <= size && s->sh_size <= size - s->sh_offset;
}

/*
 * Fills o from the mapped file: every defined function symbol, with its
 * name copied. A file that is not ELF of our class, has no .symtab, or
 * whose build id differs from the loaded object's leaves o empty. Every
 * offset is checked against the file's size: a truncated or odd file
 * gives no names, never a crash.
 */
static void read_table(object *o, const found_object *f, const unsigned char *file, size_t size) {
    if (size < sizeof(ElfW(Ehdr))) return;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)file;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != NATIVE_CLASS ||
        eh->e_shentsize != sizeof(ElfW(Shdr)))
        return;
    const ElfW(Shdr) *symtab = NULL;
    const unsigned char *mem_id = NULL;
    size_t mem_id_len = loaded_build_id(f, &mem_id);
    for (size_t i = 0; i < eh->e_shnum; i++) {
        const ElfW(Shdr) *s = section(file, size, eh, i);
        if (!s || !inside(s, size)) continue;
        if (s->sh_type == SHT_SYMTAB && !symtab) symtab = s;
        if (s->sh_type == SHT_NOTE && mem_id_len) {
            const unsigned char *file_id = NULL;
            size_t n = note_build_id(file + s->sh_offset, s->sh_size, &file_id);
            if (n && (n != mem_id_len || memcmp(file_id, mem_id, n) != 0)) return; /* another build */
        }
    }
    if (!symtab || symtab->sh_entsize != sizeof(ElfW(Sym))) return;
    const ElfW(Shdr) *strtab = section(file, size, eh, symtab->sh_link);
    if (!strtab || !inside(strtab, size) || strtab->sh_size == 0) return;
    const ElfW(Sym) *in = (const ElfW(Sym) *)(file + symtab->sh_offset);
    size_t count = symtab->sh_size / sizeof(ElfW(Sym));
    const char *strs = (const char *)(file + strtab->sh_offset);
    size_t strs_size = strtab->sh_size;

    /* Two passes: count the functions and their names, then copy. */
    size_t n = 0, pool = 0;
    for (size_t i = 0; i < count; i++) {
        int type = ELF64_ST_TYPE(in[i].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || in[i].st_shndx == SHN_UNDEF ||
            in[i].st_name >= strs_size || strs[in[i].st_name] == '\0')
            continue;
        n++;
        pool += strnlen(strs + in[i].st_name, strs_size - in[i].st_name) + 1;
    }
    if (n == 0 || pool > UINT32_MAX) return;
    sym *syms = malloc(n * sizeof *syms);
    char *names = malloc(pool);
    if (!syms || !names) {
        free(syms);
        free(names);
        return;
    }
    size_t k = 0, at = 0;
    for (size_t i = 0; i < count && k < n; i++) {
        int type = ELF64_ST_TYPE(in[i].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || in[i].st_shndx == SHN_UNDEF ||
            in[i].st_name >= strs_size || strs[in[i].st_name] == '\0')
            continue;
        size_t len = strnlen(strs + in[i].st_name, strs_size - in[i].st_name);
        memcpy(names + at, strs + in[i].st_name, len);
        names[at + len] = '\0';
        syms[k].lo = f->bias + in[i].st_value;
        syms[k].size = in[i].st_size;
        syms[k].name = (uint32_t)at;
        at += len + 1;
        k++;
    }
    qsort(syms, k, sizeof *syms, by_address);
    o->syms = syms;
    o->n = k;
    o->names = names;
}

static void load(object *o, const found_object *f) {
    const char *path = f->path[0] ? f->path : "/proc/self/exe";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return; /* the vDSO, or a file gone: no names */
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        void *file = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (file != MAP_FAILED) {
            read_table(o, f, file, (size_t)st.st_size);
            munmap(file, (size_t)st.st_size);
        }
    }
    close(fd);
}

/* The cached object for f, loaded on first use; NULL when the cache is
 * full or out of memory. Called with lock held. */
static object *object_for(const found_object *f) {
    for (size_t i = 0; i < object_count; i++)
        if (objects[i].bias == f->bias && strcmp(objects[i].path, f->path) == 0) return &objects[i];
    if (object_count == MAX_OBJECTS) return NULL;
    object *o = &objects[object_count];
    memset(o, 0, sizeof *o);
    if (!(o->path = strdup(f->path))) return NULL;
    o->bias = f->bias;
    load(o, f);
    object_count++;
    return o;
}

/* The symbol holding at: the last one starting at or below it, if its size
 * covers it (or, sizeless, no other symbol starts between). */
static const sym *find(const object *o, uintptr_t at) {
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->syms[mid].lo <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Among symbols at one address (aliases), prefer one with a size. */
    for (size_t i = lo; i-- > 0;) {
        const sym *s = &o->syms[i];
        if (s->size && at - s->lo < s->size) return s;
        if (!s->size && i + 1 == lo) return s;
        if (i == 0 || o->syms[i - 1].lo != s->lo) break;
    }
    return NULL;
}

int cio__symtab_lookup(uintptr_t at, const char **name, uintptr_t *start) {
    found_object f = {.at = at};
    if (!at || !dl_iterate_phdr(holds, &f) || !f.found) return 0;
    pthread_once(&once, init_once);
    int ok = 0;
    pthread_mutex_lock(&lock);
    object *o = object_for(&f);
    const sym *s = o && o->syms ? find(o, at) : NULL;
    if (s) {
        /* Names live as long as the process: objects are never dropped. */
        *name = o->names + s->name;
        *start = s->lo;
        ok = 1;
    }
    pthread_mutex_unlock(&lock);
    return ok;
}
