/*
 * CloudBase AI plugin ABI, version 1: the same layout as `cloudbase_plugin_api::abi` (Rust).
 *
 * A plugin exports `cloudbase_plugin_entry_v1`, returning a pointer to a static vtable. Every
 * message is UTF-8 JSON (see the Rust `messages` module for the shapes). Inputs are borrowed for
 * the duration of a call; outputs are buffers the plugin allocates and frees in `free_buf`.
 * Plugins must never let an exception or panic cross these functions, and must set
 * CLOUDBASE_FLAG_PANIC_UNWIND to say so.
 */
#ifndef CLOUDBASE_PLUGIN_H
#define CLOUDBASE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define CLOUDBASE_ABI_VERSION 1u
#define CLOUDBASE_FLAG_PANIC_UNWIND 1u
/* The plugin reads a response's body and an event's data either as a JSON string ("body",
 * "data") or, when they are JSON, as the JSON value itself ("body_json", "data_json"). A host
 * sends the second form only to plugins that set this flag. The other way, a plugin may write a
 * request's JSON body as "body_json" when the config `create` received has
 * "raw_json_bodies": true. */
#define CLOUDBASE_FLAG_RAW_JSON_BODIES 2u

#define CLOUDBASE_OK 0
#define CLOUDBASE_ERROR 1
#define CLOUDBASE_PANIC 2

typedef struct { const uint8_t *ptr; size_t len; } cb_rstr;
typedef struct { uint8_t *ptr; size_t len; size_t cap; } cb_rbuf;

/* Returns 0 to continue, non-zero when the host wants the stream to stop. */
typedef int32_t (*cb_emit_fn)(void *ctx, cb_rstr event);

typedef struct {
    uint32_t abi_version;  /* CLOUDBASE_ABI_VERSION */
    uint32_t struct_size;  /* sizeof(cb_plugin_vtable) */
    uint32_t flags;        /* CLOUDBASE_FLAG_* */
    cb_rstr (*name)(void);
    int32_t (*manifest)(cb_rbuf *out);
    int32_t (*create)(cb_rstr config, void **out_instance, cb_rbuf *out);
    void (*destroy)(void *instance);
    int32_t (*call)(void *instance, cb_rstr method, cb_rstr input, cb_rbuf *out);
    int32_t (*call_stream)(void *instance, cb_rstr method, cb_rstr input, cb_emit_fn emit,
                           void *ctx, cb_rbuf *out); /* may be NULL */
    void (*free_buf)(cb_rbuf buf);
} cb_plugin_vtable;

/* The one exported symbol. */
const cb_plugin_vtable *cloudbase_plugin_entry_v1(void);

#endif
