/* chaosclock: the wall clock of a node's processes, skewed by an offset the harness writes to a file.
 *
 * Loaded with LD_PRELOAD into the nodes a stack file opts in (`x-clock: true`). It wraps the calls that
 * read the wall clock - clock_gettime for CLOCK_REALTIME, CLOCK_REALTIME_COARSE and CLOCK_TAI,
 * gettimeofday, time - and adds the offset, in nanoseconds, from the file named by CHAOS_CLOCK_FILE
 * (one signed integer; read again at most every 100 ms of the real monotonic clock). Monotonic and
 * CPU clocks, sleeps and timed waits are left as they are: an NTP step moves the wall clock only.
 * A missing, empty or unreadable file keeps the last offset (0 at start).
 *
 * Why not libfaketime: Debian bookworm's 0.9.10 breaks Python 3.11 (time.sleep fails with EINVAL when
 * monotonic clocks are not faked, and threading.Event.wait never returns when they are).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RECHECK_NS 100000000LL

static volatile int64_t offset_ns;
static volatile int64_t checked_at = INT64_MIN;
static char file[4096];  /* a copy: programs that set their process title (Redis) overwrite environ */
static int (*real_clock_gettime)(clockid_t, struct timespec *);

static int raw_clock_gettime(clockid_t id, struct timespec *ts) {
    if (real_clock_gettime)
        return real_clock_gettime(id, ts);
    return (int)syscall(SYS_clock_gettime, id, ts);
}

static void refresh(void) {
    struct timespec now;
    if (raw_clock_gettime(CLOCK_MONOTONIC_COARSE, &now) != 0)
        return;
    int64_t t = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
    if (t - checked_at < RECHECK_NS && checked_at != INT64_MIN)
        return;
    checked_at = t;
    if (!file[0])
        return;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (end != buf)
        offset_ns = v;
}

__attribute__((constructor)) static void init(void) {
    real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    const char *name = getenv("CHAOS_CLOCK_FILE");
    if (name && strlen(name) < sizeof file)
        strcpy(file, name);
    refresh();
}

static int is_wall(clockid_t id) {
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_TAI;
}

static void shift(struct timespec *ts) {
    int64_t ns = (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns;
    ts->tv_sec = (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000L;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    int rc = raw_clock_gettime(id, ts);
    if (rc == 0 && is_wall(id)) {
        refresh();
        shift(ts);
    }
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    struct timespec ts;
    if (tz)
        ((int *)tz)[0] = ((int *)tz)[1] = 0;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
