/* ws.h - a raw TCP and websocket client for tests: connect to 127.0.0.1,
 * write everything, read with a deadline, the RFC 6455 handshake and
 * frames, written by hand so tests see exactly what crosses the wire.
 *
 *   char head[1024], msg[256];
 *   size_t len;
 *   int fd = h_tcp_connect(port, 0);
 *
 *   ck_assert_int_ge(fd, 0);
 *   ck_assert_int_eq(h_ws_handshake(fd, "/ws?token=t", head, sizeof(head),
 *                                   2000), 0);
 *   ck_assert_msg(strncmp(head, "HTTP/1.1 101", 12) == 0, "%s", head);
 *   ck_assert_int_eq(h_ws_send(fd, H_WS_TEXT, "hello", 5), 0);
 *   ck_assert_int_eq(h_ws_recv(fd, msg, sizeof(msg), &len, 2000), H_WS_TEXT);
 *   close(fd);
 *
 * The client always masks its frames and sends each message as one frame;
 * it does not answer pings or reassemble fragments (tests that need either
 * write those bytes themselves with h_send_all()).
 *
 * Errors follow harness.h: 0 (or the documented value) on success, a
 * negative BERTH_E* code on failure; failures that are not timeouts print a
 * line starting with "harness:" on stderr. A timeout is an expected outcome
 * for a test ("nothing more arrives") and prints nothing. One thread per
 * descriptor.
 */
#ifndef BERTH_TESTS_HARNESS_WS_H
#define BERTH_TESTS_HARNESS_WS_H

#include <stddef.h>

/* Opcodes (RFC 6455, 5.2). */
#define H_WS_TEXT 1
#define H_WS_BINARY 2
#define H_WS_CLOSE 8
#define H_WS_PING 9
#define H_WS_PONG 10

/* Connects a TCP socket to 127.0.0.1:port, with TCP_NODELAY and close-on-
 * exec set. rcvbuf > 0 sets SO_RCVBUF first (to make a slow reader); 0
 * keeps the default. Returns the descriptor, which the caller closes, or a
 * berth code. */
int h_tcp_connect(int port, int rcvbuf);

/* Writes all n bytes of p (MSG_NOSIGNAL: a peer that went away is an
 * error, not a signal). Returns 0 or BERTH_EIO. */
int h_send_all(int fd, const void *p, size_t n);

/* Reads exactly n bytes into p, waiting at most timeout_ms in all. Returns
 * how many arrived: fewer than n after the timeout or when the peer closed
 * or reset the connection. Changes the socket's SO_RCVTIMEO. */
size_t h_recv_n(int fd, void *p, size_t n, int timeout_ms);

/* Sends an upgrade request for target ("/ws?token=...") with the sample
 * key of RFC 6455 (so the accept value is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=)
 * and reads the response head, up to and including the blank line, into
 * head (size bytes, always NUL-terminated, "" when nothing came). Reads
 * one byte at a time, so no frame that follows is consumed. Returns 0
 * whatever the status (the caller checks head), BERTH_ETIMEDOUT when the
 * head did not end within timeout_ms (or the connection closed first),
 * BERTH_ETOOBIG when it did not fit, BERTH_EIO when sending failed. */
int h_ws_handshake(int fd, const char *target, char *head, size_t size,
                   int timeout_ms);

/* Sends one masked frame with FIN set: opcode (H_WS_TEXT, ...) and len
 * bytes of data, any length. Returns 0, BERTH_ENOMEM or BERTH_EIO. */
int h_ws_send(int fd, int opcode, const void *data, size_t len);

/* Reads one frame from the server into out (size bytes) and NUL-terminates
 * it; stores its payload length in *len when len is not NULL. Waits up to
 * timeout_ms for the frame to begin and as long again for each later part
 * of it. Returns its opcode (0..15), BERTH_ETIMEDOUT on a timeout or a
 * closed connection, BERTH_ETOOBIG when the payload does not fit in size - 1
 * bytes (the stream is out of step then: close it). */
int h_ws_recv(int fd, char *out, size_t size, size_t *len, int timeout_ms);

#endif
