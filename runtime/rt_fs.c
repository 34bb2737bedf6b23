/* rt_fs.c: see rt_fs.h. */
#include "rt_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rt_mkdirs(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1;; c++) {
        if (*c == '/' || !*c) {
            char s = *c;
            *c = 0;
            if (mkdir(p, 0777) && errno != EEXIST) return -1;
            *c = s;
            if (!s) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int rt_write_atomic(const char *path, const char *text) { return rt_write_atomic_bytes(path, text, strlen(text)); }

int rt_not_replaceable(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode);
}

int rt_check_out(const char *opt, const char *path, char *err, size_t errlen) {
    if (!path) return 0;
    if (!*path) {
        snprintf(err, errlen, "%s is empty; expected a file path", opt);
        return 2;
    }
    if (rt_not_replaceable(path)) {
        snprintf(err, errlen, "%s %s exists and is not a regular file (a folder, device, FIFO or socket): it would not be "
                 "replaced", opt, path);
        return 2;
    }
    return 0;
}

int rt_write_atomic_bytes(const char *path, const void *text, size_t n) {
    char tmp[4200];
    if (rt_not_replaceable(path)) {
        errno = EEXIST;
        return -1;
    }
    /* a new file with a unique name (mkstemp: O_EXCL, never through a symbolic link) */
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%lx.XXXXXX", path, (long)getpid(), (unsigned long)pthread_self());
    const int fd = mkstemp(tmp);
    if (fd >= 0) fchmod(fd, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        const int e = errno;
        if (fd >= 0) close(fd);
        errno = e;
        return -1;
    }
    int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

void rt_remove_partial(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[4200];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth > 0) rt_remove_partial(p, depth - 1);
            continue;
        }
        const char *t = strstr(de->d_name, ".tmp.");
        if (S_ISREG(st.st_mode) && t && t[5] >= '0' && t[5] <= '9') unlink(p);
    }
    closedir(d);
}

char *rt_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? 2 * cap : 65536 * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                errno = ENOMEM;
                break;
            }
            buf = nb;
        }
        const size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                errno = EIO;
                break;
            }
            fclose(f);
            buf[n] = 0;
            if (len) *len = n;
            return buf;
        }
    }
    fclose(f);
    free(buf);
    return NULL;
}

double rt_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
