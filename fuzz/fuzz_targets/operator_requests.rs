//! Every operator RPC through the node's handlers, with the invariants of the property tests
//! (`node/src/service/fuzz`): byte 0 picks the RPC, byte 1 the caller, byte 2 a case, account
//! or key of the store, the rest is the request's encoding. A broken invariant panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fengqiao_node::service::fuzz::fuzz_one(data);
});
