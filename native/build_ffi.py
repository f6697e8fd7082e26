"""build_ffi.py - cffi builder (out-of-line API mode) for vnetshare._native.

set_source() includes the real headers, so the compiler checks every cdef
below against them: a prototype that drifts from its header fails the build.
Everything under native/ is compiled with -Wall -Wextra -Werror.
"""
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["ring.c", "ring_bench.c"]

CDEF = """
#define RING_CTRL_SIZE ...
#define RING_ALIGN ...
#define RING_SIZE_MIN ...
#define RING_SIZE_MAX ...
#define RING_SIZE_DEFAULT ...
#define RING_VNET_HDR_LEN ...
#define RING_ETH_HLEN ...
#define RING_FRAME_MAX ...
#define RING_LEN_MAX ...
#define RING_REC_PAD ...
#define BENCH_POLL ...
#define BENCH_VERIFY ...

enum ring_role { RING_PRODUCER, RING_CONSUMER, ... };
enum ring_drop { RING_DROP__MAX, ... };

struct ring_vnet_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};

struct ring_stats {
    uint64_t records;
    uint64_t bytes;
    uint64_t pads;
    uint64_t full;
    uint64_t kicks;
    uint64_t sleeps;
    uint64_t skipped_bytes;
    uint64_t short_reads;
    uint64_t drops[];
    ...;
};

struct ring_rec {
    struct ring_vnet_hdr vnet;
    uint8_t l2[14];
    uint32_t frame_len;
    const uint8_t *frame;
    uint64_t pos;
};

struct ring;

int ring_create(uint64_t data_size, int *memfd, int *data_efd, int *space_efd);
int ring_attach(struct ring **out, int memfd, int data_efd, int space_efd,
                int role, uint64_t data_size);
void ring_detach(struct ring *r);
uint64_t ring_data_size(const struct ring *r);
int ring_role(const struct ring *r);
int ring_reserve(struct ring *r, uint32_t len, uint8_t **payload);
int ring_commit(struct ring *r, uint32_t len);
int ring_flush(struct ring *r);
int ring_read_fd(struct ring *r, int fd, unsigned int max, unsigned int *count);
int ring_peek(struct ring *r, struct ring_rec *rec);
int ring_release(struct ring *r);
int ring_write_fd(struct ring *r, int fd, unsigned int max, unsigned int *count);
int ring_ready(struct ring *r, uint32_t need);
int ring_arm(struct ring *r, uint32_t need);
void ring_disarm(struct ring *r);
int ring_wait(struct ring *r, uint32_t need, int timeout_ms);
int ring_fileno(const struct ring *r);
void ring_set_spin(struct ring *r, unsigned int spin_us);
void ring_get_stats(const struct ring *r, struct ring_stats *st);
const char *ring_drop_name(unsigned int reason);

struct bench_result {
    uint64_t records;
    uint64_t bytes;
    uint64_t elapsed_ns;
    uint64_t bad;
    uint64_t first_bad;
};
int bench_produce(struct ring *r, uint64_t count, const uint32_t *sizes,
                  unsigned int nsizes, unsigned int burst,
                  unsigned int pause_every, unsigned int pause_us,
                  unsigned int flags, int timeout_ms, struct bench_result *res);
int bench_consume(struct ring *r, uint64_t count, const uint32_t *sizes,
                  unsigned int nsizes, unsigned int flags, int timeout_ms,
                  struct bench_result *res);
int bench_ping(struct ring *tx, struct ring *rx, uint64_t count, uint32_t len,
               unsigned int flags, int timeout_ms, uint64_t *rtt_ns,
               struct bench_result *res);
int bench_pong(struct ring *rx, struct ring *tx, uint64_t count,
               unsigned int flags, int timeout_ms, struct bench_result *res);
int bench_sock_send(int fd, uint64_t count, uint32_t len,
                    struct bench_result *res);
int bench_sock_recv(int fd, uint64_t count, uint32_t len,
                    struct bench_result *res);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "vnetshare._native",
    '#include "ring.h"\n#include "ring_bench.h"\n',
    sources=[f"native/{name}" for name in SOURCES],
    include_dirs=["native"],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent / "build"), verbose=True)
