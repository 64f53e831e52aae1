/*
 * A table indexed by file descriptor number whose entries never move.
 *
 * Entries live in fixed chunks of CIO__FD_CHUNK; only the array of chunk
 * pointers grows. A pointer to an entry therefore stays valid for the
 * table's whole life, even while a task sleeps and another descriptor with
 * a far larger number grows the table (a realloc'ed flat array would leave
 * the sleeper's pointer dangling). A chunk is only created for a
 * descriptor that is open, so a huge, closed number costs nothing.
 */
#ifndef CIO_BASE_FD_TABLE_H
#define CIO_BASE_FD_TABLE_H

#include <stddef.h>

#define CIO__FD_CHUNK 256

typedef struct cio__fd_table {
    void **chunks;
    size_t chunk_count;
    size_t entry_size;
    void (*init_entry)(void *entry); /* run on every entry of a new chunk; NULL: zero it */
} cio__fd_table;

void cio__fd_table_init(cio__fd_table *t, size_t entry_size, void (*init_entry)(void *entry));
/* The entry of fd, or NULL if the table has none yet. */
static inline void *cio__fd_table_find(const cio__fd_table *t, int fd) {
    size_t c = (size_t)fd / CIO__FD_CHUNK;
    if (fd < 0 || c >= t->chunk_count || !t->chunks[c]) return NULL;
    return (char *)t->chunks[c] + ((size_t)fd % CIO__FD_CHUNK) * t->entry_size;
}
/* The entry of fd, creating its chunk if needed: -EBADF in *err for a
 * descriptor that is not open, -ENOMEM if memory runs out. */
void *cio__fd_table_get(cio__fd_table *t, int fd, int *err);
/* Calls fn on every entry of every chunk. */
void cio__fd_table_each(cio__fd_table *t, void (*fn)(void *entry, int fd, void *arg), void *arg);
void cio__fd_table_destroy(cio__fd_table *t);

#endif
