/* One request to dfewd's control socket (see ctlsock_client.h). */
#include "ctlsock_client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

int ctlsock_request(const char *sock_path, const char *req, char *reply, size_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct sbuf line = {0};
    sbuf_addf(&line, "%s\n", req);
    ssize_t w = write(fd, line.s, line.len);
    sbuf_free(&line);
    if (w < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t got = 0;
    while (got + 1 < len) {
        ssize_t n = read(fd, reply + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(reply, '\n', got))
            break;
    }
    close(fd);
    reply[got] = '\0';
    reply[strcspn(reply, "\n")] = '\0';
    return got ? 0 : -EPROTO;
}
