/*
 * The floor for the transport benchmark: the smallest useful libuv programs, with no
 * framing, no queues and no handshake. `disco bench transport` runs them in the same
 * run as the Swift transport and reports ratios.
 *
 *   uv-pingpong rtt    tcp|unix ROUNDS SIZE   fixed-size ping-pong; prints median_ns and p99_ns
 *   uv-pingpong stream tcp|unix COUNT SIZE    one-way stream of COUNT messages; prints msgs_per_s, mb_per_s
 *
 * Server and client run their own loops on two threads of one process, as the
 * Swift side does.
 */
#include <uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int use_unix;
static char pipe_path[256];
static int port;
static size_t msg_size;
static long rounds;
static int mode_stream;

static uv_sem_t server_ready;

/* ---- server: echo (rtt) or count (stream) ---- */
typedef struct { uv_stream_t *s; char buf[1 << 16]; size_t have; long total; uint64_t start; } conn_t;

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    conn_t *c = h->data;
    (void)hint;
    b->base = c->buf + c->have;
    b->len = sizeof c->buf - c->have;
}

typedef struct { uv_write_t req; char data[]; } wreq_t;
static void free_write(uv_write_t *r, int status) { (void)status; free(r); }

static long expected_bytes;
static uint64_t stream_end;

static void server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    conn_t *c = s->data;
    (void)b;
    if (n < 0) { uv_close((uv_handle_t *)s, NULL); return; }
    if (mode_stream) {
        c->total += n;
        if (c->total >= expected_bytes) { stream_end = uv_hrtime(); uv_close((uv_handle_t *)s, NULL); }
        return;
    }
    c->have += n;
    while (c->have >= msg_size) {
        wreq_t *w = malloc(sizeof *w + msg_size);
        memcpy(w->data, c->buf, msg_size);
        uv_buf_t out = uv_buf_init(w->data, msg_size);
        uv_write(&w->req, s, &out, 1, free_write);
        memmove(c->buf, c->buf + msg_size, c->have - msg_size);
        c->have -= msg_size;
    }
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    conn_t *c = calloc(1, sizeof *c);
    uv_stream_t *client;
    if (use_unix) { client = malloc(sizeof(uv_pipe_t)); uv_pipe_init(server->loop, (uv_pipe_t *)client, 0); }
    else { client = malloc(sizeof(uv_tcp_t)); uv_tcp_init(server->loop, (uv_tcp_t *)client); uv_tcp_nodelay((uv_tcp_t *)client, 1); }
    client->data = c;
    c->s = client;
    uv_accept(server, client);
    uv_read_start(client, alloc_cb, server_read);
    uv_close((uv_handle_t *)server, NULL);
}

static void server_thread(void *arg) {
    (void)arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_stream_t *server;
    if (use_unix) {
        server = malloc(sizeof(uv_pipe_t));
        uv_pipe_init(&loop, (uv_pipe_t *)server, 0);
        unlink(pipe_path);
        uv_pipe_bind((uv_pipe_t *)server, pipe_path);
    } else {
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", 0, &a);
        server = malloc(sizeof(uv_tcp_t));
        uv_tcp_init(&loop, (uv_tcp_t *)server);
        uv_tcp_bind((uv_tcp_t *)server, (struct sockaddr *)&a, 0);
        struct sockaddr_in bound;
        int len = sizeof bound;
        uv_tcp_getsockname((uv_tcp_t *)server, (struct sockaddr *)&bound, &len);
        port = ntohs(bound.sin_port);
    }
    uv_listen(server, 16, on_connection);
    uv_sem_post(&server_ready);
    uv_run(&loop, UV_RUN_DEFAULT);
}

/* ---- client ---- */
static uint64_t *samples;
static long done_rounds;
static uint64_t sent_at;
static char *payload;
static conn_t client_conn;

static void send_ping(uv_stream_t *s) {
    uv_buf_t out = uv_buf_init(payload, msg_size);
    static uv_write_t w;
    sent_at = uv_hrtime();
    uv_write(&w, s, &out, 1, NULL);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    conn_t *c = s->data;
    (void)b;
    if (n < 0) { uv_close((uv_handle_t *)s, NULL); return; }
    c->have += n;
    while (c->have >= msg_size) {
        c->have -= msg_size;
        samples[done_rounds++] = uv_hrtime() - sent_at;
        if (done_rounds == rounds) { uv_close((uv_handle_t *)s, NULL); return; }
        send_ping(s);
    }
}

static uint64_t stream_start;
static void stream_more(uv_write_t *w, int status);
static long chunks_left;
static char *chunk;
static size_t chunk_len;

static void stream_more(uv_write_t *w, int status) {
    if (status < 0 || chunks_left == 0) { if (w) uv_close((uv_handle_t *)w->handle, NULL); return; }
    static uv_write_t req;
    uv_buf_t out = uv_buf_init(chunk, chunk_len);
    chunks_left--;
    uv_write(&req, w ? w->handle : client_conn.s, &out, 1, stream_more);
}

static void on_connect(uv_connect_t *req, int status) {
    if (status < 0) { fprintf(stderr, "connect: %s\n", uv_strerror(status)); exit(1); }
    uv_stream_t *s = req->handle;
    s->data = &client_conn;
    client_conn.s = s;
    if (mode_stream) {
        stream_start = uv_hrtime();
        stream_more(NULL, 0);
    } else {
        uv_read_start(s, alloc_cb, client_read);
        send_ping(s);
    }
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "rtt") && strcmp(argv[1], "stream")) || (strcmp(argv[2], "tcp") && strcmp(argv[2], "unix"))) {
        fprintf(stderr, "usage: uv-pingpong rtt|stream tcp|unix ROUNDS|COUNT SIZE\n");
        return 2;
    }
    mode_stream = !strcmp(argv[1], "stream");
    use_unix = !strcmp(argv[2], "unix");
    rounds = atol(argv[3]);
    msg_size = (size_t)atol(argv[4]);
    if (rounds <= 0 || msg_size == 0 || msg_size > 60000) { fprintf(stderr, "bad count or size\n"); return 2; }
    snprintf(pipe_path, sizeof pipe_path, "/tmp/uv-pingpong-%d.sock", (int)getpid());
    payload = calloc(1, msg_size);
    samples = calloc(rounds, sizeof *samples);
    if (mode_stream) {
        size_t per_chunk = (1 << 16) / msg_size;
        chunk_len = per_chunk * msg_size;
        chunk = calloc(1, chunk_len);
        chunks_left = (rounds + per_chunk - 1) / per_chunk;
        expected_bytes = chunks_left * (long)chunk_len;
    }

    uv_sem_init(&server_ready, 0);
    uv_thread_t t;
    uv_thread_create(&t, server_thread, NULL);
    uv_sem_wait(&server_ready);

    uv_loop_t *loop = uv_default_loop();
    uv_connect_t creq;
    if (use_unix) {
        uv_pipe_t *p = malloc(sizeof *p);
        uv_pipe_init(loop, p, 0);
        uv_pipe_connect(&creq, p, pipe_path, on_connect);
    } else {
        uv_tcp_t *c = malloc(sizeof *c);
        uv_tcp_init(loop, c);
        uv_tcp_nodelay(c, 1);
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", port, &a);
        uv_tcp_connect(&creq, c, (struct sockaddr *)&a, on_connect);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_thread_join(&t);
    unlink(pipe_path);

    if (mode_stream) {
        double secs = (stream_end - stream_start) / 1e9;
        long msgs = expected_bytes / (long)msg_size;
        printf("msgs_per_s=%.0f mb_per_s=%.1f\n", msgs / secs, expected_bytes / secs / 1e6);
    } else {
        qsort(samples, rounds, sizeof *samples, cmp);
        printf("median_ns=%llu p99_ns=%llu\n", (unsigned long long)samples[rounds / 2],
               (unsigned long long)samples[(rounds * 99) / 100]);
    }
    return 0;
}
