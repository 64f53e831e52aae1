/*
 * A program's text as the reports show it (name_text.h). The watchdog's
 * report, the stack-overflow report and the default exception handler all
 * print a task's name, which is whatever bytes the program gave: a name
 * holding an escape sequence would otherwise drive the terminal, and a
 * newline would forge a line of the report. The task dump quotes names
 * by the same UTF-8 rule (src/debug/dump.c).
 */
#include <stdint.h>

#include "name_text.h"

size_t cio__utf8_sequence(const unsigned char *p) {
    unsigned char c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, cp = c & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the NUL */
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

size_t cio__name_text(char *out, size_t cap, const char *s) {
    static const char digits[] = "0123456789abcdef";
    if (cap == 0) return 0;
    size_t at = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned char c = *p;
        size_t len = c < 0x80 ? 1 : cio__utf8_sequence(p);
        int escape = c < 0x20 || c == 0x7f || c == '\\' || c == '\'' || c == '"' || len == 0;
        size_t need = escape ? 4 : len;
        if (at + need >= cap) break;
        if (escape) {
            out[at++] = '\\';
            out[at++] = 'x';
            out[at++] = digits[c >> 4];
            out[at++] = digits[c & 15];
            p++;
        } else {
            for (size_t i = 0; i < len; i++) out[at++] = (char)p[i];
            p += len;
        }
    }
    out[at] = '\0';
    return at;
}
