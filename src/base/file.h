/* file.h - reading the small files of /proc and /sys. */
#ifndef WEFT_BASE_FILE_H
#define WEFT_BASE_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Reads what one read(2) gives of path (at most cap - 1 bytes) into buf,
 * NUL-terminated. Returns the length, or -1 if the file cannot be opened
 * or read (or is empty). Close-on-exec, no errno guarantees. */
ssize_t weft__read_file(const char *path, char *buf, size_t cap);

#endif
