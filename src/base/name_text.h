/*
 * A program's text (a task's name) as the reports show it: the terminal
 * or log a report reaches must not take the program's bytes as commands.
 */
#ifndef CIO_BASE_NAME_TEXT_H
#define CIO_BASE_NAME_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong form, no surrogate, nothing above U+10FFFF), or 0. A NUL ends
 * any sequence. */
size_t cio__utf8_sequence(const unsigned char *p);

/* The code point of the well-formed sequence of len bytes at p. */
uint32_t cio__utf8_code_point(const unsigned char *p, size_t len);

/* True for the code points a terminal or a text view takes as commands
 * rather than text: the C1 controls (U+0080-U+009F, U+009B is CSI), the
 * line and paragraph separators (U+2028, U+2029) and the bidirectional
 * marks, embeddings, overrides and isolates (U+200E, U+200F,
 * U+202A-U+202E, U+2066-U+2069), which reorder what follows on screen. */
int cio__code_point_steers_text(uint32_t cp);

/* Copies s into out (cap bytes, always NUL-terminated when cap > 0) with
 * control characters, DEL, the backslash, both quotes, every byte that
 * starts no well-formed UTF-8 sequence and every byte of a code point that
 * steers text (above) written as \xNN; other well-formed UTF-8 passes as
 * it is. An escape or a sequence that would not fit whole is
 * left out, with everything after it. Async-signal-safe. Returns the
 * length written. */
size_t cio__name_text(char *out, size_t cap, const char *s);

#endif
