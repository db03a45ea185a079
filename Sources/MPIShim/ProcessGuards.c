// Process guards of an MPI rank, in C because they run in a signal handler or must call variadic
// prctl: (1) die with the launcher (PR_SET_PDEATHSIG), so that killing mpirun cannot leave ranks
// writing checkpoints; (2) SIGTERM/SIGINT ask the run to stop cleanly, and a watchdog thread ends
// the process if it has not stopped within a grace period (stuck in a collective or in I/O).
#define _GNU_SOURCE
#include "MPIShim.h"
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

int unroll_kill_on_parent_death(void) {
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return -1;
    // The parent may have died between fork and prctl; we were then reparented and no signal comes.
    if (getppid() != parent) kill(getpid(), SIGKILL);
    return 0;
}

static volatile sig_atomic_t stop_count = 0;
static volatile sig_atomic_t first_signal = 0;
/// Posted by the handler (sem_post is async-signal-safe) to wake the watchdog thread.
static sem_t stop_wake;
static volatile double stop_grace = 30;
static char prefix[64];
static const char *volatile current_wait = NULL;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int installed = 0;

static void on_stop_signal(int sig) {
    int saved = errno;  // a handler must not change errno under the interrupted code
    if (stop_count == 0) first_signal = sig;
    if (stop_count < 1000) stop_count = stop_count + 1;
    sem_post(&stop_wake);
    errno = saved;
}

/// Waits for the first signal, then for the grace period or a second signal, then ends the
/// process. Returning from main first (the normal stop) ends this thread with the process.
static void *stop_watchdog(void *unused) {
    (void)unused;
    while (sem_wait(&stop_wake) != 0) {}  // EINTR: wait again
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    double grace = stop_grace;
    deadline.tv_sec += (time_t)grace;
    deadline.tv_nsec += (long)((grace - (double)(time_t)grace) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec += 1; deadline.tv_nsec -= 1000000000L; }
    int second = 0;
    for (;;) {
        if (sem_clockwait(&stop_wake, CLOCK_MONOTONIC, &deadline) == 0) { second = 1; break; }
        if (errno == ETIMEDOUT) break;
    }
    int sig = first_signal;
    const char *what = current_wait;
    char where[160];
    if (what) snprintf(where, sizeof where, "stuck waiting for other ranks in '%s'", what);
    else snprintf(where, sizeof where, "stuck outside MPI waits: I/O, computation or MPI_Finalize");
    char line[400];
    int n;
    if (second)
        n = snprintf(line, sizeof line, "%ssecond %s: ending the process now (%s); exit status %d\n",
                     prefix, sig == SIGINT ? "SIGINT" : "SIGTERM", where, 128 + sig);
    else
        n = snprintf(line, sizeof line, "%s%s received %g s ago but the process has not stopped (%s); "
                     "ending it with exit status %d\n", prefix, sig == SIGINT ? "SIGINT" : "SIGTERM", grace,
                     where, 128 + sig);
    if (n > 0) {
        if (n >= (int)sizeof line) n = (int)sizeof line - 1;
        ssize_t unused_rc = write(2, line, (size_t)n);
        (void)unused_rc;
    }
    // Not exit(): atexit handlers would run MPI_Finalize, which waits for the stuck ranks.
    _exit(128 + sig);
}

int unroll_install_stop_signals(double grace_seconds, const char *rank_prefix) {
    pthread_mutex_lock(&install_lock);
    stop_grace = grace_seconds;
    snprintf(prefix, sizeof prefix, "%s", rank_prefix);
    int rc = 0;
    if (!installed) {
        if (sem_init(&stop_wake, 0, 0) != 0) { rc = errno; goto done; }
        // Blocked in the watchdog thread (it inherits the mask), so the handler runs on another
        // thread and never interrupts the thread's own waits.
        sigset_t stops, previous;
        sigemptyset(&stops);
        sigaddset(&stops, SIGTERM);
        sigaddset(&stops, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stops, &previous);
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&thread, &attr, stop_watchdog, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &previous, NULL);
        if (rc != 0) goto done;
        installed = 1;  // the thread exists: never start a second one
        // SA_RESTART: the first signal only asks for a clean stop, so the I/O and MPI calls it
        // interrupts must carry on rather than fail with EINTR (HDF5 and Foundation do not retry).
        // A rank stuck in such a call is ended by the watchdog thread instead.
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = on_stop_signal;
        action.sa_mask = stops;  // one handler at a time, so the count is not torn
        action.sa_flags = SA_RESTART;
        if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) rc = errno;
    }
done:
    pthread_mutex_unlock(&install_lock);
    return rc;
}

int unroll_stop_signal_count(void) { return stop_count; }

void unroll_set_current_wait(const char *what) { current_wait = what; }
