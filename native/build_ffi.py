"""build_ffi.py - cffi builder (out-of-line API mode) for vnetshare.dataplane._native.

set_source() includes the real headers, so the compiler checks every cdef
below against them: a prototype that drifts from its header fails the build.
Everything under native/ is compiled with -Wall -Wextra -Werror.
"""
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["ring.c", "ring_bench.c", "tap.c", "pump.c", "uplink.c", "guard.c", "fdb.c", "switch.c"]

CDEF = """
#define RING_CTRL_SIZE ...
#define RING_ALIGN ...
#define RING_SIZE_MIN ...
#define RING_SIZE_MAX ...
#define RING_SIZE_DEFAULT ...
#define RING_VNET_HDR_LEN ...
#define RING_VNET_F_NEEDS_CSUM ...
#define RING_VNET_GSO_NONE ...
#define RING_VNET_GSO_TCPV4 ...
#define RING_VNET_GSO_TCPV6 ...
#define RING_VNET_GSO_UDP_L4 ...
#define RING_VNET_GSO_ECN ...
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

#define RING_DRAIN_MAX ...

struct ring_fds {
    int memfd;
    int data_rd;
    int data_wr;
    int space_rd;
    int space_wr;
};

struct ring_end {
    int memfd;
    int wait_fd;
    int kick_fd;
};

int ring_create(uint64_t data_size, struct ring_fds *fds);
void ring_fds_end(const struct ring_fds *fds, int role, struct ring_end *end);
int ring_attach(struct ring **out, const struct ring_end *end, int role,
                uint64_t data_size);
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
uint64_t ring_used(struct ring *r);
int ring_arm(struct ring *r, uint32_t need);
void ring_disarm(struct ring *r);
int ring_wait(struct ring *r, uint32_t need, int timeout_ms);
int ring_fileno(const struct ring *r);
void ring_get_stats(const struct ring *r, struct ring_stats *st);
uint64_t ring_violations(const struct ring *r);
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

/* tap.h */
#define TAP_F_CSUM ...
#define TAP_F_TSO4 ...
#define TAP_F_TSO6 ...
#define TAP_F_TSO_ECN ...
#define TAP_F_USO4 ...
#define TAP_F_USO6 ...
#define TAP_PERSIST ...
int tap_open(int netns_fd, const char *ifname, const uint8_t *mac,
             unsigned int offloads, unsigned int flags, int *fd);
int tap_set_offload(int fd, unsigned int offloads);
int tap_set_persist(int fd, int persist);

/* coalesce.h */
#define COALESCE_USECS_DEFAULT ...
#define COALESCE_USECS_MAX ...

/* pump.h */
#define PUMP_BURST_DEFAULT ...
#define PUMP_BURST_MAX ...
struct pump_stats {
    uint64_t tx_frames;
    uint64_t tx_bytes;
    uint64_t rx_frames;
    uint64_t rx_bytes;
    uint64_t a2h_full;
    uint64_t short_reads;
    uint64_t tap_write_errors;
    uint64_t tap_full;
    uint64_t sleeps;
    uint64_t wakeups;
    uint64_t naps;
    uint64_t polls;
    uint64_t poll_hits;
};
struct pump;
int pump_create(struct pump **out, int tap_fd, struct ring *a2h,
                struct ring *h2a, unsigned int burst);
int pump_set_coalesce(struct pump *p, unsigned int usecs);
int pump_run(struct pump *p);
int pump_stop(struct pump *p);
void pump_get_stats(const struct pump *p, struct pump_stats *st);
void pump_destroy(struct pump *p);

/* uplink.h */
#define UPLINK_VNET_HDR_LEN ...
#define UPLINK_TPACKET_V2 ...
#define UPLINK_TPACKET_V3 ...
#define UPLINK_F_PROMISC ...
#define UPLINK_F_NO_ALLMULTI ...
#define UPLINK_F_QDISC_BYPASS ...
struct uplink_config {
    uint32_t version;
    uint32_t block_size;
    uint32_t block_nr;
    uint32_t frame_size;
    uint32_t block_tov_ms;
    uint32_t sndbuf;
    uint32_t flags;
};
struct uplink_stats {
    uint64_t rx_frames;
    uint64_t rx_bytes;
    uint64_t rx_truncated;
    uint64_t rx_kernel_drops;
    uint64_t rx_wakeups;
    uint64_t tx_frames;
    uint64_t tx_bytes;
    uint64_t tx_msgsize;
    uint64_t tx_errors;
    uint64_t tx_calls;
    uint64_t socket_errors;
};
struct uplink;
int uplink_open(struct uplink **out, int ifindex,
                const struct uplink_config *cfg);
void uplink_close(struct uplink *u);
int uplink_fd(const struct uplink *u);
int uplink_mtu(const struct uplink *u, uint32_t *mtu);
int uplink_add_mac(struct uplink *u, const uint8_t *mac);
int uplink_del_mac(struct uplink *u, const uint8_t *mac);
int uplink_clear_error(struct uplink *u, int *err);
int uplink_get_stats(struct uplink *u, struct uplink_stats *st);

/* tbucket.h */
#define TBUCKET_NANO ...
struct tbucket {
    uint64_t rate;
    uint64_t burst;
    uint64_t last_ns;
    ...;
};
void tbucket_init(struct tbucket *tb, uint64_t rate, uint64_t burst,
                  uint64_t now);
void tbucket_set(struct tbucket *tb, uint64_t rate, uint64_t burst,
                 uint64_t now);
int tbucket_ok(struct tbucket *tb, uint64_t now);
void tbucket_charge(struct tbucket *tb, uint64_t n);
int tbucket_take(struct tbucket *tb, uint64_t n, uint64_t now);
uint64_t tbucket_wait_ns(struct tbucket *tb, uint64_t now);

/* fdb.h */
#define FDB_SIZE_DEFAULT ...
#define FDB_SIZE_MIN ...
#define FDB_SIZE_MAX ...
#define FDB_AGE_DEFAULT_S ...
#define FDB_AGE_MAX_S ...
#define FDB_PROBES ...
struct fdb_entry {
    uint8_t mac[6];
    uint16_t vlan;
    uint64_t seen_ns;
};
struct fdb_info {
    uint8_t mac[6];
    uint16_t vlan;
    uint64_t age_ns;
};
struct fdb_stats {
    uint64_t entries;
    uint64_t learned;
    uint64_t evicted;
    uint64_t size;
};
struct fdb {
    uint64_t age_ns;
    uint64_t learned;
    uint64_t evicted;
    ...;
};
int fdb_init(struct fdb *f, uint32_t size, uint64_t age_ns, uint64_t seed);
void fdb_fini(struct fdb *f);
struct fdb_entry *fdb_learn(struct fdb *f, const uint8_t *mac, uint16_t vlan,
                            uint64_t now, int *added);
const struct fdb_entry *fdb_find(const struct fdb *f, const uint8_t *mac,
                                 int vlan, uint64_t now);
int fdb_live(const struct fdb *f, const struct fdb_entry *e, uint64_t now);
void fdb_describe(const struct fdb_entry *e, uint64_t now,
                  struct fdb_info *out);
unsigned int fdb_dump(const struct fdb *f, uint64_t now, struct fdb_info *out,
                      unsigned int max, unsigned int *total);
void fdb_get_stats(const struct fdb *f, uint64_t now, struct fdb_stats *st);

/* switch.h */
#define SW_PORTS_DEFAULT ...
#define SW_PORTS_LIMIT ...
#define SW_VIOLATION_NEVER ...
#define SW_VLAN_MAX ...
#define SW_FLOOD_SHARE_NUM ...
#define SW_FLOOD_SHARE_DEN ...
#define SW_CAPTURES_MAX ...
#define SW_PORT_CAPTURES_MAX ...
#define SW_MTU_MIN ...
#define SW_UPLINKS ...
#define SW_UPLINK_NONE ...
#define SW_CAP_RX ...
#define SW_CAP_TX ...
#define SW_CAP_DROPS ...
#define SW_MAC_CONFLICT_YIELD ...
#define SW_MAC_CONFLICT_KEEP ...
struct sw_config {
    uint32_t burst_frames;
    uint32_t burst_bytes;
    uint32_t uplink_burst;
    uint32_t mtu;
    uint32_t violation_limit;
    uint32_t max_ports;
    uint32_t direct_pct;
    uint32_t fdb_size;
    uint32_t fdb_age_s;
    uint32_t mac_conflict;
    struct uplink_config uplink;
};
/* guard.h */
#define GUARD_HDR_COPY ...
#define GUARD_HDR_COPY_MAX ...
#define GUARD_ADDR_MAX ...
#define GUARD_EXT_MAX ...
#define GUARD_TCP_MIN_SND_MSS ...
#define GUARD_UDP_MAX_SEGMENTS ...
#define GUARD_F_L3_ANY ...
#define GUARD_F_TRUSTED_ROUTER ...
#define GUARD_F_ALLOW_LLC ...
enum guard_verdict { GUARD_PASS_UNICAST, GUARD_PASS_GROUP, GUARD__MAX, ... };
struct guard_prefix4 {
    uint8_t addr[4];
    uint8_t len;
};
struct guard_prefix6 {
    uint8_t addr[16];
    uint8_t len;
};
struct guard_port {
    uint8_t mac[6];
    uint8_t n_ip4;
    uint8_t n_ip6;
    uint32_t flags;
    struct guard_prefix4 ip4[...];
    struct guard_prefix6 ip6[...];
    ...;
};
struct guard_frame {
    uint32_t l4_off;
    uint32_t l4_proto;
    uint32_t hdr_len;
    uint32_t segs;
    uint32_t want;
    uint64_t bytes;
};
enum guard_verdict guard_check_frame(const struct guard_port *port,
                                     const struct ring_rec *rec,
                                     const uint8_t *hdr, uint32_t hdr_len,
                                     uint32_t mtu, struct guard_frame *gf);
const char *guard_verdict_name(unsigned int verdict);
uint32_t guard_gso_segs(uint32_t frame_len, uint32_t hdr_len,
                        uint32_t gso_size, uint64_t *bytes);
enum guard_scope_kind { GUARD_SCOPE_ALL, GUARD_SCOPE_ROUTERS, GUARD_SCOPE_ARP, GUARD_SCOPE_SOLICITED };
struct guard_scope {
    int kind;
    uint8_t key[4];
};
void guard_group_scope(const uint8_t *eth, const uint8_t *l3, uint32_t l3_len,
                       struct guard_scope *sc);
int guard_port_wants(const struct guard_port *port,
                     const struct guard_scope *sc);

struct sw_port_stats {
    uint64_t tx_frames;
    uint64_t tx_bytes;
    uint64_t rx_frames;
    uint64_t rx_bytes;
    uint64_t rx_direct;
    uint64_t tx_to_wire;
    uint64_t violations;
    uint64_t ring_skipped_bytes;
    uint64_t disconnected;
    uint64_t drop_uplink_tx;
    uint64_t drop_h2a_full;
    uint64_t drop_storm;
    uint64_t drop_flood_share;
    uint64_t drop_rx_rate;
    uint64_t drop_other_vlan;
    uint64_t tx_throttled;
    uint64_t a2h_used;
    uint64_t h2a_used;
    uint64_t ring_bytes;
    uint64_t captures;
    uint64_t mac_conflicts;
    uint64_t mac_conflict;
    uint64_t drop_mac_conflict;
    uint64_t drop_no_uplink;
    uint64_t guard_drops[...];
    uint64_t ring_drops[...];
    ...;
};
struct sw_uplink_stats {
    uint64_t rx_frames;
    uint64_t rx_bytes;
    uint64_t rx_delivered;
    uint64_t rx_drop_unknown;
    uint64_t rx_drop_vlan;
    uint64_t rx_drop_other_vlan;
    uint64_t rx_drop_truncated;
    uint64_t rx_drop_kernel;
    uint64_t rx_drop_h2a_full;
    uint64_t tx_frames;
    uint64_t tx_bytes;
    uint64_t tx_drop_msgsize;
    uint64_t tx_drop_errors;
    uint64_t tx_drop_no_uplink;
    uint64_t tx_calls;
    uint64_t socket_errors;
    uint64_t attached;
    uint64_t rebinds;
    uint64_t rx_drop_inactive;
    uint64_t active_slot;
    uint64_t uplink_moves;
    uint64_t rounds;
    uint64_t sleeps;
    uint64_t commands;
    uint64_t ports;
    uint64_t naps;
    uint64_t flood_scoped;
    uint64_t polls;
    uint64_t poll_hits;
    uint64_t fdb_entries;
    uint64_t fdb_learned;
    uint64_t fdb_evicted;
};
struct sw_rate {
    uint64_t bits_per_sec;
    uint64_t bits_burst;
    uint64_t pkts_per_sec;
    uint64_t pkts_burst;
};
struct sw_port_policy {
    struct guard_port guard;
    uint16_t vlan;
    uint32_t storm_pps;
    uint32_t storm_burst;
    struct sw_rate tx;
    struct sw_rate rx;
};
enum sw_drop { SW_DROP_NONE, SW_DROP_GUARD, SW_DROP__MAX, ... };
struct sw_cap_hdr {
    uint64_t time_ns;
    uint32_t orig_len;
    uint16_t dir;
    uint16_t drop;
};
struct sw_capture_stats {
    uint64_t frames;
    uint64_t bytes;
    uint64_t lost;
};
struct sw;
int sw_create(struct sw **out, int uplink_ifindex, const struct sw_config *cfg);
void sw_destroy(struct sw *sw);
int sw_set_coalesce(struct sw *sw, unsigned int usecs);
int sw_run(struct sw *sw);
int sw_stop(struct sw *sw);
int sw_port_add(struct sw *sw, uint32_t port_id,
                const struct sw_port_policy *pol, const struct ring_end *a2h,
                const struct ring_end *h2a, uint64_t ring_size);
int sw_port_set_policy(struct sw *sw, uint32_t port_id,
                       const struct sw_port_policy *pol);
int sw_port_set_tap(struct sw *sw, uint32_t port_id, int tap_fd);
int sw_port_del(struct sw *sw, uint32_t port_id, struct sw_port_stats *final);
int sw_port_stats(struct sw *sw, uint32_t port_id, struct sw_port_stats *st);
int sw_all_port_stats(struct sw *sw, uint32_t *ids, struct sw_port_stats *st,
                      unsigned int max, unsigned int *n);
int sw_uplink_stats(struct sw *sw, struct sw_uplink_stats *st);
int sw_capture_add(struct sw *sw, uint32_t port_id, uint32_t flags,
                   uint32_t snaplen, const struct ring_end *ring,
                   uint64_t ring_size, uint32_t *cap_id);
int sw_capture_del(struct sw *sw, uint32_t cap_id,
                   struct sw_capture_stats *final);
const char *sw_drop_name(unsigned int drop);
int sw_notify_fd(struct sw *sw);
int sw_notes_rearm(struct sw *sw);
int sw_mtu(struct sw *sw, uint32_t *mtu);
int sw_set_mtu(struct sw *sw, uint32_t mtu);
int sw_uplink_attach(struct sw *sw, unsigned int slot, int ifindex);
int sw_uplink_detach(struct sw *sw, unsigned int slot);
int sw_uplink_select(struct sw *sw, unsigned int slot);
int sw_fdb_find(struct sw *sw, const uint8_t *mac, struct fdb_info *out);
int sw_fdb_dump(struct sw *sw, struct fdb_info *out, unsigned int max,
                unsigned int *n);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "vnetshare.dataplane._native",
    '#include "ring.h"\n#include "ring_bench.h"\n#include "tap.h"\n#include "coalesce.h"\n#include "pump.h"\n'
    '#include "uplink.h"\n#include "fdb.h"\n#include "switch.h"\n',
    sources=[f"native/{name}" for name in SOURCES],
    include_dirs=["native"],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent / "build"), verbose=True)
