/* panic.h - the one way weft reports a broken invariant: a message, then abort. */
#ifndef WEFT_BASE_PANIC_H
#define WEFT_BASE_PANIC_H

/* Prints "weft: <message>\n" to stderr and aborts. Async-signal-safe when
 * fmt has no conversions other than %s, %d, %u, %lu, %llu, %zu and %p. */
_Noreturn void weft__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Formats into buf (like snprintf, but async-signal-safe for the
 * conversions listed above). Returns the length written. */
int weft__format(char *buf, int cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
