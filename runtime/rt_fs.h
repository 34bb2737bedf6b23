/* rt_fs: the file-system helpers every writer of avgen shares: mkdir -p, and whole-file writes that a
 * reader never sees half done (temporary file, fsync, rename); and the monotonic clock its timings use. */
#ifndef AVGEN_RT_FS_H
#define AVGEN_RT_FS_H
#include <stddef.h>

/* mkdir -p; 0, or -1 with errno set (also when the path exists and is not a folder). */
int rt_mkdirs(const char *dir);
/* 1 when path names something a finished file must not be renamed onto: an existing device, FIFO, socket or
 * folder (a regular file or a symbolic link, which the rename replaces, is fine; so is a path not there). */
int rt_not_replaceable(const char *path);
/* An output option's value checked before any work: 0, or 2 with one sentence in err when path is empty or
 * not replaceable (opt names the option, "--out"). NULL (the option not given) is fine. */
int rt_check_out(const char *opt, const char *path, char *err, size_t errlen);
/* Writes text (or n bytes) to a new temporary file PATH.tmp.<pid>.<thread>.<unique> (mkstemp: never through
 * a symbolic link; mode 0644), fsyncs, renames onto path. 0, or -1 with errno set (EEXIST when path is not
 * replaceable, above). */
int rt_write_atomic(const char *path, const char *text);
int rt_write_atomic_bytes(const char *path, const void *data, size_t n);
/* The whole file as a NUL-terminated, malloc'd buffer (*len: its size without the NUL, when len is given);
 * NULL with errno set when it cannot be read. */
char *rt_read_file(const char *path, size_t *len);
/* Removes what killed writers left under dir, down to depth levels of sub-folders: files named
 * NAME.tmp.<digit>... (the temporary names above), never a finished file. */
void rt_remove_partial(const char *dir, int depth);
/* Seconds on the monotonic clock (differences only). */
double rt_now(void);
#endif
