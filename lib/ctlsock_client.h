/* The client side of dfewd's control socket (HOME/dfewd.sock): one request
 * line, one reply line. dfewctl and dfew-web use it to wake the daemon after
 * they queued work and to stop the worker of a cancelled job. The server
 * side is daemon/ctlsock.c. */
#ifndef DFEW_CTLSOCK_CLIENT_H
#define DFEW_CTLSOCK_CLIENT_H

#include <stddef.h>

/* Sends req (without its newline) and reads one reply line into reply
 * (newline stripped). 0, -ECONNREFUSED or -ENOENT when the daemon is not
 * running, or another negative errno. Waits at most 5 s. */
int ctlsock_request(const char *sock_path, const char *req, char *reply, size_t len);

#endif
