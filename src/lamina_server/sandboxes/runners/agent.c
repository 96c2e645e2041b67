/*
 * The Lamina sandbox agent: the first process (pid 1) of a bubblewrap sandbox.
 *
 * The server starts one bwrap per sandbox running this program, built static (libc only),
 * with the agent's end of a SOCK_SEQPACKET socket pair as its only argument (a descriptor
 * number). The agent moves it to fd 3, and then:
 *
 *   - spawns commands the server asks for, each in a session of its own (setsid), with
 *     the server's pipes (passed with SCM_RIGHTS) or a terminal the agent opens on the
 *     sandbox's /dev/ptmx, sending its master back; a command that cannot start (not found,
 *     bad cwd) is reported with its errno, through a close-on-exec pipe;
 *   - reaps every process of the sandbox (orphans are re-parented to it) and reports the
 *     exit status of the commands it spawned;
 *   - kills a command's process group and session on request, and when the command exits
 *     (a process that started a session of its own lives on until the sandbox stops);
 *   - kills everything and exits when the control socket closes (the server stopped the
 *     sandbox, or died). Being pid 1, its exit ends every process of the pid namespace.
 *
 * Messages, one per packet, fields in native byte order without padding:
 *   server -> agent
 *     SPAWN 'S' u32 id, u8 terminal, u16 cols, u16 rows, u32 argc, u32 envc,
 *           then cwd, argc arguments and envc "NAME=value" strings, each NUL-terminated;
 *           with pipes, three descriptors (stdin, stdout, stderr) as SCM_RIGHTS.
 *     KILL  'K' u32 id, i32 signal
 *   agent -> server
 *     READY   'R'
 *     SPAWNED 'P' u32 id, i32 pid, i32 errno, u8 stage (0: running); with a terminal that
 *             started, its master as SCM_RIGHTS.
 *     EXIT    'E' u32 id, i32 status (the exit code, or 128 + the signal that killed it)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define CONTROL_FD 3
#define MAX_MESSAGE (128 * 1024)
#define SPAWN_HEADER 18
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum { STAGE_RUNNING, STAGE_EXEC, STAGE_CHDIR, STAGE_TERMINAL, STAGE_START };

struct child {
    uint32_t id;
    pid_t pid;
};

static struct child *children;
static size_t child_count, child_capacity;
static char message[MAX_MESSAGE + 1];

static void shut_down(int status)
{
    kill(-1, SIGKILL); /* as pid 1: every other process of the namespace */
    _exit(status);
}

static void send_message(const void *data, size_t size, int fd)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = size};
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr header = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        header.msg_control = control.buffer;
        header.msg_controllen = sizeof control.buffer;
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&header);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    while (sendmsg(CONTROL_FD, &header, MSG_NOSIGNAL) < 0) {
        if (errno != EINTR)
            shut_down(0); /* the server is gone */
    }
}

static void reply_spawned(uint32_t id, int32_t pid, int32_t error, uint8_t stage, int fd)
{
    char reply[14];
    reply[0] = 'P';
    memcpy(reply + 1, &id, 4);
    memcpy(reply + 5, &pid, 4);
    memcpy(reply + 9, &error, 4);
    reply[13] = (char)stage;
    send_message(reply, sizeof reply, fd);
}

static void remember(uint32_t id, pid_t pid)
{
    if (child_count == child_capacity) {
        size_t capacity = child_capacity ? child_capacity * 2 : 16;
        struct child *grown = realloc(children, capacity * sizeof *children);
        if (grown == NULL)
            shut_down(1);
        children = grown;
        child_capacity = capacity;
    }
    children[child_count].id = id;
    children[child_count].pid = pid;
    child_count++;
}

static struct child *find_by_id(uint32_t id)
{
    for (size_t i = 0; i < child_count; i++)
        if (children[i].id == id)
            return &children[i];
    return NULL;
}

/* Reports in the child, before exec: the errno and the stage that failed. */
static _Noreturn void fail(int report, uint8_t stage)
{
    char data[5];
    int32_t error = errno;
    memcpy(data, &error, 4);
    data[4] = (char)stage;
    ssize_t ignored = write(report, data, sizeof data);
    (void)ignored;
    _exit(127);
}

/* execve through the PATH of the command's own environment (execvpe reads the agent's). */
static void exec_command(char **argv, char **envp)
{
    const char *file = argv[0];
    if (strchr(file, '/') != NULL) {
        execve(file, argv, envp);
        return;
    }
    const char *path = DEFAULT_PATH;
    for (char **entry = envp; *entry != NULL; entry++)
        if (strncmp(*entry, "PATH=", 5) == 0)
            path = *entry + 5;
    int saved = ENOENT;
    size_t file_length = strlen(file);
    char candidate[4096];
    while (*path != '\0') {
        const char *end = strchrnul(path, ':');
        size_t length = (size_t)(end - path);
        if (length > 0 && length + 1 + file_length < sizeof candidate) {
            memcpy(candidate, path, length);
            candidate[length] = '/';
            memcpy(candidate + length + 1, file, file_length + 1);
            execve(candidate, argv, envp);
            if (errno == EACCES)
                saved = EACCES;
            else if (errno != ENOENT && errno != ENOTDIR) {
                saved = errno;
                break;
            }
        }
        path = *end == ':' ? end + 1 : end;
    }
    errno = saved;
}

static _Noreturn void run_child(int report, const char *cwd, char **argv, char **envp,
                                const char *terminal, const int *fds)
{
    /* A command starts as from a fresh login: no signal blocked and none ignored, whatever
     * the server inherited (a server started in the background ignores SIGINT, so Ctrl-C on
     * a sandbox's terminal would otherwise do nothing). */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (setsid() < 0)
        fail(report, STAGE_START);
    if (terminal != NULL) {
        int slave = open(terminal, O_RDWR);
        if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
            fail(report, STAGE_TERMINAL);
        for (int fd = 0; fd < 3; fd++)
            if (dup2(slave, fd) < 0)
                fail(report, STAGE_TERMINAL);
        if (slave > 2)
            close(slave);
    } else {
        for (int fd = 0; fd < 3; fd++)
            if (dup2(fds[fd], fd) < 0)
                fail(report, STAGE_START);
    }
    if (chdir(cwd) < 0)
        fail(report, STAGE_CHDIR);
    exec_command(argv, envp);
    fail(report, STAGE_EXEC);
}

static const char *next_string(const char **cursor, const char *end)
{
    const char *start = *cursor;
    const char *nul = memchr(start, '\0', (size_t)(end - start));
    if (nul == NULL)
        return NULL;
    *cursor = nul + 1;
    return start;
}

static void spawn(size_t size, const int *fds, int fd_count)
{
    uint32_t id, argc, envc;
    uint16_t cols, rows;
    memcpy(&id, message + 1, 4);
    uint8_t terminal = (uint8_t)message[5];
    memcpy(&cols, message + 6, 2);
    memcpy(&rows, message + 8, 2);
    memcpy(&argc, message + 10, 4);
    memcpy(&envc, message + 14, 4);
    const char *cursor = message + SPAWN_HEADER, *end = message + size;
    if (argc == 0 || argc > size || envc > size || (!terminal && fd_count != 3)) {
        reply_spawned(id, 0, EINVAL, STAGE_START, -1);
        return;
    }
    char **argv = calloc(argc + 1, sizeof *argv);
    char **envp = calloc(envc + 1, sizeof *envp);
    const char *cwd = next_string(&cursor, end);
    int valid = argv != NULL && envp != NULL && cwd != NULL;
    for (uint32_t i = 0; valid && i < argc; i++)
        valid = (argv[i] = (char *)next_string(&cursor, end)) != NULL;
    for (uint32_t i = 0; valid && i < envc; i++)
        valid = (envp[i] = (char *)next_string(&cursor, end)) != NULL;
    int master = -1, report[2] = {-1, -1};
    char slave[64];
    if (!valid) {
        reply_spawned(id, 0, EINVAL, STAGE_START, -1);
        goto done;
    }
    if (terminal) {
        struct winsize size_of_terminal = {.ws_row = rows, .ws_col = cols};
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || unlockpt(master) < 0 || ptsname_r(master, slave, sizeof slave) != 0 ||
            ioctl(master, TIOCSWINSZ, &size_of_terminal) < 0) {
            reply_spawned(id, 0, errno, STAGE_TERMINAL, -1);
            goto done;
        }
    }
    if (pipe2(report, O_CLOEXEC) < 0) {
        reply_spawned(id, 0, errno, STAGE_START, -1);
        goto done;
    }
    pid_t pid = fork();
    if (pid < 0) {
        reply_spawned(id, 0, errno, STAGE_START, -1);
        goto done;
    }
    if (pid == 0)
        run_child(report[1], cwd, argv, envp, terminal ? slave : NULL, fds);
    close(report[1]);
    report[1] = -1;
    char failure[5];
    size_t got = 0;
    while (got < sizeof failure) {
        ssize_t n = read(report[0], failure + got, sizeof failure - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == sizeof failure) {
        int32_t error;
        memcpy(&error, failure, 4);
        waitpid(pid, NULL, 0);
        reply_spawned(id, 0, error, (uint8_t)failure[4], -1);
    } else {
        remember(id, pid);
        reply_spawned(id, pid, 0, STAGE_RUNNING, master);
    }
done:
    for (int i = 0; i < 2; i++)
        if (report[i] >= 0)
            close(report[i]);
    if (master >= 0)
        close(master);
    free(argv);
    free(envp);
}

/* The session id of a /proc entry (field 6 of stat, after the command's parentheses). */
static pid_t session_of(int pid)
{
    char path[32], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return -1;
    stat[n] = '\0';
    char *after = strrchr(stat, ')');
    int session;
    if (after == NULL || sscanf(after + 1, " %*c %*d %*d %d", &session) != 1)
        return -1;
    return session;
}

/* Kills the process group and session a command leads (and may have left: pids of groups
 * and sessions in use are not reused). */
static void kill_tree(pid_t leader, int signal)
{
    kill(-leader, signal);
    DIR *proc = opendir("/proc"); /* processes that left its group but not its session */
    if (proc == NULL)
        return;
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        int pid = atoi(entry->d_name);
        if (pid > 1 && session_of(pid) == leader)
            kill(pid, signal);
    }
    closedir(proc);
}

static void kill_command(uint32_t id, int signal)
{
    struct child *child = find_by_id(id);
    if (child != NULL) /* else it exited, and its tree with it */
        kill_tree(child->pid, signal);
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < child_count; i++) {
            if (children[i].pid != pid)
                continue;
            int32_t code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
            kill_tree(pid, SIGKILL); /* what it started dies with it, unless setsid */
            char report[9];
            report[0] = 'E';
            memcpy(report + 1, &children[i].id, 4);
            memcpy(report + 5, &code, 4);
            children[i] = children[--child_count];
            send_message(report, sizeof report, -1);
            break;
        }
    }
}

static void receive(void)
{
    struct iovec iov = {.iov_base = message, .iov_len = sizeof message};
    union {
        char buffer[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr header = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buffer,
        .msg_controllen = sizeof control.buffer,
    };
    ssize_t size = recvmsg(CONTROL_FD, &header, MSG_CMSG_CLOEXEC);
    if (size < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (size <= 0)
        shut_down(0); /* closed: the sandbox stops */
    int fds[3], fd_count = 0;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&header); cmsg != NULL;
         cmsg = CMSG_NXTHDR(&header, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
            if (fd_count < 3)
                fds[fd_count++] = fd;
            else
                close(fd);
        }
    }
    if (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        shut_down(1); /* the server never sends more than it may */
    if (message[0] == 'S' && size >= SPAWN_HEADER) {
        spawn((size_t)size, fds, fd_count);
    } else if (message[0] == 'K' && size == 9) {
        uint32_t id;
        int32_t signal;
        memcpy(&id, message + 1, 4);
        memcpy(&signal, message + 5, 4);
        kill_command(id, signal);
    }
    for (int i = 0; i < fd_count; i++)
        close(fds[i]);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    int control = atoi(argv[1]);
    if (control < 0 || fcntl(control, F_GETFD) < 0)
        return 2;
    if (control != CONTROL_FD) {
        if (dup2(control, CONTROL_FD) < 0)
            return 2;
        close(control);
    }
    int null = open("/dev/null", O_RDWR);
    if (null < 0)
        return 2;
    for (int fd = 0; fd < 3; fd++)
        dup2(null, fd);
    if (null > 2)
        close(null);
    if (syscall(SYS_close_range, CONTROL_FD + 1, ~0U, 0) < 0)
        for (int fd = CONTROL_FD + 1; fd < 1024; fd++)
            close(fd);
    fcntl(CONTROL_FD, F_SETFD, FD_CLOEXEC);
    prctl(PR_SET_DUMPABLE, 0); /* no sandbox process may read or write the agent's memory */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int signals = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signals < 0)
        return 2;
    send_message("R", 1, -1);
    for (;;) {
        struct pollfd watched[2] = {
            {.fd = CONTROL_FD, .events = POLLIN},
            {.fd = signals, .events = POLLIN},
        };
        if (poll(watched, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            shut_down(1);
        }
        if (watched[1].revents) {
            struct signalfd_siginfo info;
            while (read(signals, &info, sizeof info) > 0)
                ;
            reap();
        }
        if (watched[0].revents)
            receive();
    }
}
