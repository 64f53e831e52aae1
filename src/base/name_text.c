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

uint32_t cio__utf8_code_point(const unsigned char *p, size_t len) {
    static const unsigned char lead_bits[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    uint32_t cp = p[0] & lead_bits[len];
    for (size_t i = 1; i < len; i++) cp = cp << 6 | (p[i] & 0x3fu);
    return cp;
}

int cio__code_point_steers_text(uint32_t cp) {
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t cio__name_text(char *out, size_t cap, const char *s) {
    static const char digits[] = "0123456789abcdef";
    if (cap == 0) return 0;
    size_t at = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned char c = *p;
        size_t len = c < 0x80 ? 1 : cio__utf8_sequence(p);
        int escape = c < 0x20 || c == 0x7f || c == '\\' || c == '\'' || c == '"' || len == 0 ||
                     (len > 1 && cio__code_point_steers_text(cio__utf8_code_point(p, len)));
        if (escape) {
            /* Each byte of it as \xNN, the whole or nothing. */
            size_t n = len ? len : 1;
            if (at + 4 * n >= cap) break;
            for (size_t i = 0; i < n; i++) {
                out[at++] = '\\';
                out[at++] = 'x';
                out[at++] = digits[p[i] >> 4];
                out[at++] = digits[p[i] & 15];
            }
            p += n;
        } else {
            if (at + len >= cap) break;
            for (size_t i = 0; i < len; i++) out[at++] = (char)p[i];
            p += len;
        }
    }
    out[at] = '\0';
    return at;
}
