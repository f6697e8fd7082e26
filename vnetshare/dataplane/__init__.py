"""vnetshare.dataplane - the C data plane (native/, built by cffi into
_native) and the thin Python that drives it.

ring      the shared-memory ring between a partition's agent and the switch
          (the patent's DMA path)
switch    the hosting daemon's forwarding loop: ports, uplink, PortPolicy
pump      the agent's loop: TAP <-> rings
tap       the partition's TAP device, with the uplink's offloads
guard     GuardPolicy: what a partition may send from (its identity)
counters  one shape for every C stats struct
_loop     a native loop run in a Python thread (switch, pump)
"""
