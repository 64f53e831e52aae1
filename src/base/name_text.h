/*
 * A program's text (a task's name) as the reports show it: the terminal
 * or log a report reaches must not take the program's bytes as commands.
 */
#ifndef CIO_BASE_NAME_TEXT_H
#define CIO_BASE_NAME_TEXT_H

#include <stddef.h>

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong form, no surrogate, nothing above U+10FFFF), or 0. A NUL ends
 * any sequence. */
size_t cio__utf8_sequence(const unsigned char *p);

/* Copies s into out (cap bytes, always NUL-terminated when cap > 0) with
 * control characters, DEL, the backslash, both quotes and every byte that
 * starts no well-formed UTF-8 sequence written as \xNN; well-formed UTF-8
 * passes as it is. An escape or a sequence that would not fit whole is
 * left out, with everything after it. Async-signal-safe. Returns the
 * length written. */
size_t cio__name_text(char *out, size_t cap, const char *s);

#endif
