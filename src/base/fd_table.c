/* The descriptor-indexed table with entries that never move (fd_table.h). */
#include "fd_table.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "fault.h"

void cio__fd_table_init(cio__fd_table *t, size_t entry_size, void (*init_entry)(void *entry)) {
    t->chunks = NULL;
    t->chunk_count = 0;
    t->entry_size = entry_size;
    t->init_entry = init_entry;
}

void *cio__fd_table_get(cio__fd_table *t, int fd, int *err) {
    void *e = cio__fd_table_find(t, fd);
    if (e) return e;
    /* Check the descriptor before growing anything for it: a closed or
     * made-up number must not cost memory. */
    if (fd < 0 || cio__sys_fcntl(fd, F_GETFD, 0) < 0) {
        *err = fd < 0 || errno == EBADF ? -EBADF : -errno;
        return NULL;
    }
    size_t c = (size_t)fd / CIO__FD_CHUNK;
    if (c >= t->chunk_count) {
        size_t count = t->chunk_count ? t->chunk_count : 4;
        while (count <= c) count *= 2;
        void **chunks = cio__realloc(t->chunks, count * sizeof *chunks);
        if (!chunks) {
            *err = -ENOMEM;
            return NULL;
        }
        memset(chunks + t->chunk_count, 0, (count - t->chunk_count) * sizeof *chunks);
        t->chunks = chunks;
        t->chunk_count = count;
    }
    char *chunk = cio__malloc(CIO__FD_CHUNK * t->entry_size);
    if (!chunk) {
        *err = -ENOMEM;
        return NULL;
    }
    if (t->init_entry)
        for (size_t i = 0; i < CIO__FD_CHUNK; i++) t->init_entry(chunk + i * t->entry_size);
    else
        memset(chunk, 0, CIO__FD_CHUNK * t->entry_size);
    t->chunks[c] = chunk;
    return chunk + ((size_t)fd % CIO__FD_CHUNK) * t->entry_size;
}

void cio__fd_table_each(cio__fd_table *t, void (*fn)(void *entry, int fd, void *arg), void *arg) {
    for (size_t c = 0; c < t->chunk_count; c++) {
        char *chunk = t->chunks[c];
        if (!chunk) continue;
        for (size_t i = 0; i < CIO__FD_CHUNK; i++)
            fn(chunk + i * t->entry_size, (int)(c * CIO__FD_CHUNK + i), arg);
    }
}

void cio__fd_table_destroy(cio__fd_table *t) {
    for (size_t c = 0; c < t->chunk_count; c++) cio__free(t->chunks[c]);
    cio__free(t->chunks);
    t->chunks = NULL;
    t->chunk_count = 0;
}
