/* Optional C accelerator for wsocket's hot path.
 *
 * apply_mask: RFC 6455 5.3 masks every client frame with a 4-byte key. The
 * pure Python fallback (protocol/frames.py) does it with one big-integer
 * XOR; this does it 8 bytes at a time, which the compiler vectorizes, and
 * lets other threads run while it masks a large payload.
 *
 * parse_messages: the common case of the receiving state machine
 * (protocol/connection.py) for a whole run of frames at once: small,
 * complete, unfragmented text or binary messages, as many pipelined ones as
 * one read brought. It stops at the first frame that is anything else
 * (control, fragment, reserved bits, wrong masking, over the limit,
 * incomplete, invalid UTF-8) and leaves that one to the Python code, which
 * judges it and names any error. A compressed frame (RSV1) is unmasked here
 * and handed to the Python callback ``inflate``, whose exception, if any,
 * ends the run and is returned for the caller to raise.
 *
 * short_frame: the frame of one short (< 126 bytes) unmasked message, the
 * common server send, built as one bytes object: Python would make the
 * 2-byte header and then a second object for header + payload.
 *
 * send_nowait, recv_nowait: one send() or recv() with MSG_DONTWAIT on a
 * socket object, which never waits, so the GIL is kept (a socket method
 * lets it go and takes it back, for every call: with many threads, each such
 * call is a hand-over of the GIL to another thread). The descriptor is read
 * from the socket at each call with the GIL held; socket.close() marks it
 * closed before it lets the GIL go, so a closed socket gives EBADF, never
 * another connection's descriptor.
 *
 * DirectSend, DirectReceive: for a connection the reactor's loop serves (the
 * event app), WebSocket.send's usual message and the usual turn's read, each
 * in one call: the Python frames around send_nowait and recv_nowait were most
 * of the library's own time per message. Each checks the connection's state
 * on the Python objects at every call and steps aside (False, None) for
 * anything but the usual case, which the Python code then handles whole.
 * That state is read where the objects' __slots__ lie (SlotField).
 *
 * run_ready, take_armed, rearm_settled: the reactor's loop per event (run
 * the callbacks that are due; queue the armed watches epoll reported; arm
 * again the watches whose callbacks returned), the same steps as reactor.py's
 * Python ones, which stay the fallback.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <structmember.h>
#include <string.h>
#ifndef _WIN32
#include <sys/socket.h>
#include <sys/types.h>
#define HAVE_NOWAIT_IO 1
#endif

/* Payloads at least this long are masked without holding the GIL. */
#define RELEASE_GIL_FROM 65536

static void
mask_bytes(const unsigned char *in, unsigned char *out, Py_ssize_t length,
           const unsigned char *mask)
{
    uint32_t mask32;
    uint64_t mask64;
    Py_ssize_t i = 0;

    /* The key twice in a row, the same bytes on either endianness. */
    memcpy(&mask32, mask, 4);
    mask64 = ((uint64_t)mask32 << 32) | mask32;
    for (; i + 8 <= length; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, in + i, 8);
        chunk ^= mask64;
        memcpy(out + i, &chunk, 8);
    }
    for (; i < length; i++) {
        out[i] = in[i] ^ mask[i & 3];
    }
}

static PyObject *
apply_mask(PyObject *module, PyObject *args)
{
    Py_buffer data, mask;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &mask)) {
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_Format(PyExc_ValueError, "mask must be 4 bytes long, not %zd", mask.len);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    if (data.len >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        mask_bytes(data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, mask.buf);
        Py_END_ALLOW_THREADS
    }
    else {
        mask_bytes(data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, mask.buf);
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

/* Larger payloads go through the Python path, which masks them without the GIL. */
#define BATCH_PAYLOAD_MAX 65536

static PyObject *
decode_payload(const unsigned char *payload, Py_ssize_t length, const unsigned char *mask,
               int text)
{
    /* bytes for binary, str for text; NULL without an exception: not valid UTF-8. */
    PyObject *bytes, *value;
    unsigned char small[512];
    unsigned char *plain;

    if (!text) {
        if (mask == NULL) {
            return PyBytes_FromStringAndSize((const char *)payload, length);
        }
        bytes = PyBytes_FromStringAndSize(NULL, length);
        if (bytes != NULL) {
            mask_bytes(payload, (unsigned char *)PyBytes_AS_STRING(bytes), length, mask);
        }
        return bytes;
    }
    plain = (unsigned char *)payload;
    if (mask != NULL) {
        plain = length <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc(length);
        if (plain == NULL) {
            return PyErr_NoMemory();
        }
        mask_bytes(payload, plain, length, mask);
    }
    value = PyUnicode_DecodeUTF8((const char *)plain, length, "strict");
    if (plain != payload && plain != small) {
        PyMem_Free(plain);
    }
    if (value == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
    }
    return value;
}

static PyObject *data_name;  /* "data", interned */

static PyObject *
new_event(PyObject *message_class, PyObject *value)
{
    /* message_class(value), without running its Python __init__ (which only
       sets .data): object.__new__, then the attribute. None: the value itself
       (the event app takes the messages as they are, see Connection.receive_messages). */
    PyTypeObject *type = (PyTypeObject *)message_class;
    PyObject *no_args, *event;

    if (message_class == Py_None) {
        Py_INCREF(value);
        return value;
    }
    if (!PyType_Check(message_class)) {
        return PyObject_CallOneArg(message_class, value);
    }
    no_args = PyTuple_New(0);
    if (no_args == NULL) {
        return NULL;
    }
    event = type->tp_new(type, no_args, NULL);
    Py_DECREF(no_args);
    if (event != NULL && PyObject_SetAttr(event, data_name, value) < 0) {
        Py_CLEAR(event);
    }
    return event;
}

/* The run of small whole text/binary frames of buffer[position:end], appended to
 * ``messages`` as message_class(data) (see new_event). Returns the position after
 * them, or -1 with an exception set. ``*error`` gets the exception inflate()
 * raised, which ended the run (a new reference), else stays NULL. */
static Py_ssize_t
parse_run(const unsigned char *buffer, Py_ssize_t end, Py_ssize_t position, int masked,
          Py_ssize_t limit, PyObject *message_class, PyObject *inflate, PyObject *messages,
          PyObject **error)
{
    while (position >= 0 && end - position >= 2) {
        const unsigned char *frame = buffer + position;
        Py_ssize_t available = end - position, size = 2, length;
        const unsigned char *mask = NULL;
        int opcode = frame[0] & 0x0F;
        int compressed = (frame[0] & 0xF0) == 0xC0 && inflate != Py_None;
        PyObject *value, *event;

        /* FIN set, no reserved bit but RSV1 when compressed, text or binary;
           masked as this side expects. */
        if (((frame[0] & 0xF0) != 0x80 && !compressed) || (opcode != 1 && opcode != 2)
                || ((frame[1] & 0x80) != 0) != (masked != 0)) {
            break;
        }
        length = frame[1] & 0x7F;
        if (length == 126) {
            if (available < 4) {
                break;
            }
            length = ((Py_ssize_t)frame[2] << 8) | frame[3];
            size = 4;
        }
        else if (length == 127) {
            break;  /* 64 KiB or more: the Python path */
        }
        /* The limit is on the inflated size, which inflate() checks. */
        if (length > BATCH_PAYLOAD_MAX || (limit >= 0 && length > limit && !compressed)) {
            break;
        }
        if (masked) {
            if (available < size + 4) {
                break;
            }
            mask = frame + size;
            size += 4;
        }
        if (available - size < length) {
            break;
        }
        if (compressed) {
            PyObject *payload = decode_payload(frame + size, length, mask, 0);
            if (payload == NULL) {
                return -1;
            }
            position += size + length;
            value = PyObject_CallFunctionObjArgs(inflate, payload,
                                                 opcode == 1 ? Py_True : Py_False, NULL);
            Py_DECREF(payload);
            if (value == NULL) {
                /* The decompressor has moved on: this frame cannot be read
                   again, so its error is the caller's to raise. */
#if PY_VERSION_HEX >= 0x030C0000
                *error = PyErr_GetRaisedException();
#else
                PyObject *type, *traceback;
                PyErr_Fetch(&type, error, &traceback);
                PyErr_NormalizeException(&type, error, &traceback);
                if (*error != NULL && traceback != NULL) {
                    PyException_SetTraceback(*error, traceback);
                }
                Py_XDECREF(type);
                Py_XDECREF(traceback);
#endif
                break;
            }
        }
        else {
            value = decode_payload(frame + size, length, mask, opcode == 1);
            if (value == NULL) {
                if (PyErr_Occurred()) {
                    return -1;
                }
                break;  /* invalid UTF-8: the Python path names the error */
            }
            position += size + length;
        }
        event = new_event(message_class, value);
        Py_DECREF(value);
        if (event == NULL || PyList_Append(messages, event) < 0) {
            Py_XDECREF(event);
            return -1;
        }
        Py_DECREF(event);
    }
    return position;
}

static PyObject *
parse_messages(PyObject *module, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t position, limit;
    int masked;
    PyObject *message_class, *inflate, *messages, *error = NULL, *result = NULL;

    if (!PyArg_ParseTuple(args, "y*npnOO:parse_messages", &data, &position, &masked, &limit,
                          &message_class, &inflate)) {
        return NULL;
    }
    messages = PyList_New(0);
    if (messages == NULL) {
        goto done;
    }
    position = parse_run(data.buf, data.len, position, masked, limit, message_class, inflate,
                         messages, &error);
    if (position < 0 && PyErr_Occurred()) {
        Py_DECREF(messages);
        goto done;
    }
    if (error == NULL) {
        error = Py_None;
        Py_INCREF(error);
    }
    result = Py_BuildValue("NnN", messages, position, error);
done:
    PyBuffer_Release(&data);
    return result;
}

static PyObject *
short_frame(PyObject *module, PyObject *args)
{
    int first;
    PyObject *payload, *frame;
    Py_ssize_t length;

    if (!PyArg_ParseTuple(args, "iO!:short_frame", &first, &PyBytes_Type, &payload))
        return NULL;
    length = PyBytes_GET_SIZE(payload);
    if (length >= 126) {
        PyErr_Format(PyExc_ValueError,
                     "short_frame: a short frame carries at most 125 bytes, not %zd", length);
        return NULL;
    }
    if (first < 0 || first > 255) {
        PyErr_SetString(PyExc_ValueError, "short_frame: the first byte must be in 0..255");
        return NULL;
    }
    frame = PyBytes_FromStringAndSize(NULL, length + 2);
    if (frame == NULL)
        return NULL;
    {
        char *out = PyBytes_AS_STRING(frame);
        out[0] = (char)first;
        out[1] = (char)length;  /* unmasked: the mask bit stays 0 */
        memcpy(out + 2, PyBytes_AS_STRING(payload), (size_t)length);
    }
    return frame;
}

#ifdef HAVE_NOWAIT_IO
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* The descriptor of a socket object now (what its fileno() gives; -1 once closed,
 * maybe with an exception set), read without calling fileno(): straight from the
 * _socket.socket struct, whose first field is the descriptor (Modules/socketmodule.h:
 * PyObject_HEAD, then SOCKET_T sock_fd, an int here). That layout is checked against
 * fileno() on the first open socket seen; should it ever differ, fileno() is called
 * each time. Twice a message: the method call, and the int it makes, cost more
 * than the send() around them does in user space. */
typedef struct {
    PyObject_HEAD
    int sock_fd;
} SocketHead;

static PyTypeObject *socket_type;  /* _socket.socket, the base of socket.socket */
static int socket_head_fits;  /* 0: not checked yet; 1: read sock_fd; -1: call fileno() */

static int
descriptor_now(PyObject *sock)
{
    int fd;

    if (socket_head_fits == 1 && PyObject_TypeCheck(sock, socket_type))
        return ((SocketHead *)sock)->sock_fd;
    fd = PyObject_AsFileDescriptor(sock);
    if (socket_head_fits == 0 && fd >= 0 && PyObject_TypeCheck(sock, socket_type))
        socket_head_fits = ((SocketHead *)sock)->sock_fd == fd ? 1 : -1;
    return fd;
}

static int
socket_descriptor(PyObject *sock)
{
    /* sock.fileno(); a closed socket (-1) raises OSError(EBADF), as its methods do. */
    int fd = descriptor_now(sock);
    if (fd < 0 && !PyErr_Occurred()) {
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return fd;
    }
    if (fd < 0 && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
    }
    return fd;
}

static PyObject *
send_nowait(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* send_nowait(sock, data) -> the bytes written; 0 when the socket takes none now. */
    Py_buffer data;
    int fd;
    ssize_t sent;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "send_nowait(sock, data) takes 2 arguments");
        return NULL;
    }
    fd = socket_descriptor(args[0]);
    if (fd < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    sent = send(fd, data.buf, (size_t)data.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    PyBuffer_Release(&data);
    if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return PyLong_FromLong(0);
        }
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromSsize_t(sent);
}

static PyObject *
recv_nowait(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* recv_nowait(sock, size) -> bytes (b"" at the end), or None when nothing has arrived. */
    int fd;
    Py_ssize_t size;
    ssize_t got;
    PyObject *buffer;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "recv_nowait(sock, size) takes 2 arguments");
        return NULL;
    }
    size = PyLong_AsSsize_t(args[1]);
    if (size < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "recv_nowait: negative size");
        }
        return NULL;
    }
    fd = socket_descriptor(args[0]);
    if (fd < 0) {
        return NULL;
    }
    buffer = PyBytes_FromStringAndSize(NULL, size);
    if (buffer == NULL) {
        return NULL;
    }
    got = recv(fd, PyBytes_AS_STRING(buffer), (size_t)size, MSG_DONTWAIT);
    if (got < 0) {
        Py_DECREF(buffer);
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            Py_RETURN_NONE;
        }
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (got != size && _PyBytes_Resize(&buffer, got) < 0) {
        return NULL;
    }
    return buffer;
}
#endif

/* -- SlotField: a __slots__ field of wsocket's own objects, read where it lies --------
 *
 * The C paths read and write two dozen attributes and more a message, nearly
 * all __slots__ of wsocket's own objects: a Sender's holding, a Keepalive's
 * next_due, the protocol core's state, the reactor's watch and turn. The
 * attribute protocol costs 40 to 80 ns each time (the type's dictionary, then
 * the member descriptor's call): together a fifth of the library's own time
 * per echoed message. A SlotField finds its slot's offset once, from the
 * member descriptor of the first type it meets, and reads and writes there as
 * that descriptor does. Any other type (a subclass, a test's stand-in), a name
 * that is no writable object slot of that type, or a slot left empty goes
 * through the attribute protocol, with its errors.
 */
#define SLOT(object, offset) (*(PyObject **)((char *)(object) + (offset)))

typedef struct {
    const char *text;    /* the attribute's name */
    PyObject *name;      /* interned at the module's start (intern_slot_fields) */
    PyTypeObject *type;  /* the first type met (kept for good), NULL until then */
    Py_ssize_t offset;   /* where its slot lies; -1: no such slot: the protocol's way */
} SlotField;

/* The offset of a writable object slot of ``type`` named ``name``; -1: none such. */
static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name)
{
    Py_ssize_t offset = -1;
    PyObject *descriptor = PyObject_GetAttr((PyObject *)type, name);

    if (descriptor == NULL) {
        PyErr_Clear();
        return -1;
    }
    if (Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READONLY))
            offset = member->offset;
    }
    Py_DECREF(descriptor);
    return offset;
}

/* Whether ``field`` lies at its offset in ``object`` (found on the first call). */
static int
slot_field_fits(SlotField *field, PyObject *object)
{
    PyTypeObject *type = Py_TYPE(object);

    if (field->type == NULL) {
        Py_INCREF(type);
        field->type = type;
        field->offset = slot_offset(type, field->name);
    }
    return field->type == type && field->offset >= 0;
}

/* ``object``'s ``field`` (a new reference), or NULL with an error. */
static PyObject *
slot_get(PyObject *object, SlotField *field)
{
    if (slot_field_fits(field, object)) {
        PyObject *value = SLOT(object, field->offset);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(object, field->name);  /* (an empty slot: its AttributeError) */
}

/* 1: ``object``'s ``field`` is ``expected``; 0: it is not; -1: error. */
static int
slot_is(PyObject *object, SlotField *field, PyObject *expected)
{
    PyObject *value = slot_get(object, field);

    if (value == NULL)
        return -1;
    Py_DECREF(value);  /* only its identity is compared */
    return value == expected;
}

/* ``object.field = value``: 0, or -1 with an error. */
static int
slot_set(PyObject *object, SlotField *field, PyObject *value)
{
    if (slot_field_fits(field, object)) {
        PyObject *old = SLOT(object, field->offset);
        Py_INCREF(value);
        SLOT(object, field->offset) = value;
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(object, field->name, value);
}

static PyObject *append_name;  /* a deque's: the held answers' queue, the loop's ready */

/* -- DirectSend ------------------------------------------------------------------
 *
 * WebSocket.send's usual case in one call: a str or bytes message of at most
 * 64 KiB on a plain (not TLS, not green) server socket with no compression,
 * while nothing else stands in the way: not closed, no close frame sent,
 * nothing queued, the send lock free. Then the frame (unmasked: the server
 * side) leaves in one send() with MSG_DONTWAIT (of a copy of header and
 * payload when small, else a sendmsg() of the two where they lie); the GIL is
 * kept in the loop's thread, as send_nowait does, and let go with a thread
 * per connection (release_gil). While the event app answers a batch of
 * messages (sender.holding), the frame joins the batch's others in the
 * outgoing queue instead, with the send lock held (hold_in_queue, or
 * sender.hold(owner, frame) when out of the usual), and leaves with them.
 *
 * In every other case it does nothing and returns False, and the Python code
 * of WebSocket.send goes on, which knows every rule and names every error.
 * The one case it cannot give back is a partial write (the socket took the
 * start of the frame): it then hands the frame and the count to
 * owner._finish_direct_send(frame, sent) with the send lock held, which
 * sends the rest and releases the lock.
 *
 * It reads the state it checks from the Python objects at each call (a few
 * attribute reads): nothing is copied, so nothing can fall out of date.
 */
#ifdef HAVE_NOWAIT_IO
#include <sys/uio.h>
#include <time.h>

/* -- Lock: threading.Lock's interface, which C code takes without a Python call.
 *
 * The send and read locks of every connection. The C paths below take and
 * release them at every message, and a threading.Lock can only be taken
 * from C through its acquire method: a call, an argument tuple and its
 * parsing each time (a tenth of the library's own time per message). This
 * wraps the same kind of lock threading.Lock wraps, and does from Python
 * what threading.Lock does: acquire(blocking=True, timeout=-1), which lets
 * the GIL go while it waits and runs the signal handlers when a signal
 * interrupts the wait; release(); locked(); and the with statement.
 */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    char locked;  /* set by the holder once it has the lock, cleared before it lets go */
} Lock;

static PyTypeObject LockType;

static PyObject *
lock_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Lock *self;

    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Lock() takes no arguments");
        return NULL;
    }
    self = (Lock *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a lock");
        return NULL;
    }
    return (PyObject *)self;
}

static void
lock_dealloc(Lock *self)
{
    if (self->lock != NULL) {
        if (self->locked)
            PyThread_release_lock(self->lock);  /* some platforms cannot free a held one */
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The lock if it is free now: 1 taken, 0 not. Never waits, keeps the GIL. */
static int
lock_take_now(Lock *self)
{
    if (PyThread_acquire_lock_timed(self->lock, 0, 0) != PY_LOCK_ACQUIRED)
        return 0;
    self->locked = 1;
    return 1;
}

static void
lock_give_back(Lock *self)
{
    self->locked = 0;
    PyThread_release_lock(self->lock);
}

static long long
monotonic_microseconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* The lock, waiting ``timeout`` microseconds at most (-1: as long as it takes), the
   GIL let go meanwhile: 1 taken, 0 timed out, -1 a signal handler raised. */
static int
lock_wait(Lock *self, PY_TIMEOUT_T timeout)
{
    PyLockStatus status;
    long long deadline = 0;

    if (lock_take_now(self))
        return 1;
    if (timeout == 0)
        return 0;
    if (timeout > 0)
        deadline = monotonic_microseconds() + timeout;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        status = PyThread_acquire_lock_timed(self->lock, timeout, 1);
        Py_END_ALLOW_THREADS
        if (status == PY_LOCK_ACQUIRED) {
            self->locked = 1;
            return 1;
        }
        if (status == PY_LOCK_FAILURE)
            return 0;
        /* PY_LOCK_INTR: a signal came; its Python handler runs now, and may raise */
        if (Py_MakePendingCalls() < 0)
            return -1;
        if (timeout > 0) {
            timeout = (PY_TIMEOUT_T)(deadline - monotonic_microseconds());
            if (timeout <= 0)
                return lock_take_now(self);
        }
    }
}

static PyObject *
lock_acquire(Lock *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"blocking", "timeout", NULL};
    int blocking = 1, taken;
    double timeout = -1;
    PY_TIMEOUT_T microseconds;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|pd:acquire", names, &blocking, &timeout))
        return NULL;
    if (!blocking && timeout != -1) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return NULL;
    }
    if (timeout < 0 && timeout != -1) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
        return NULL;
    }
    if (!blocking) {
        microseconds = 0;
    }
    else if (timeout == -1) {
        microseconds = -1;
    }
    else {
        double whole = timeout * 1e6;
        if (whole != whole || whole >= (double)PY_TIMEOUT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
            return NULL;
        }
        microseconds = (PY_TIMEOUT_T)whole;
        if ((double)microseconds < whole)
            microseconds += 1;  /* rounded up: never less than asked */
    }
    taken = lock_wait(self, microseconds);
    if (taken < 0)
        return NULL;
    return PyBool_FromLong(taken);
}

static PyObject *
lock_enter(Lock *self, PyObject *unused)
{
    int taken = lock_wait(self, -1);
    if (taken < 0)
        return NULL;
    return PyBool_FromLong(taken);
}

static PyObject *
lock_release(Lock *self, PyObject *unused)
{
    if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    lock_give_back(self);
    Py_RETURN_NONE;
}

static PyObject *
lock_exit(Lock *self, PyObject *args)
{
    return lock_release(self, NULL);
}

static PyObject *
lock_locked(Lock *self, PyObject *unused)
{
    return PyBool_FromLong(self->locked);
}

static PyObject *
lock_repr(Lock *self)
{
    return PyUnicode_FromFormat("<%s %s object at %p>", self->locked ? "locked" : "unlocked",
                                Py_TYPE(self)->tp_name, (void *)self);
}

static PyMethodDef lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))lock_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool: as threading.Lock's."},
    {"release", (PyCFunction)lock_release, METH_NOARGS,
     "release(): as threading.Lock's (RuntimeError when not held)."},
    {"locked", (PyCFunction)lock_locked, METH_NOARGS, "locked() -> bool: whether it is held."},
    {"__enter__", (PyCFunction)lock_enter, METH_NOARGS, "acquire()"},
    {"__exit__", (PyCFunction)lock_exit, METH_VARARGS, "release()"},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsocket._speedups.Lock",
    .tp_basicsize = sizeof(Lock),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lock(): threading.Lock's interface, taken by the C paths without a Python call.",
    .tp_new = lock_new,
    .tp_dealloc = (destructor)lock_dealloc,
    .tp_repr = (reprfunc)lock_repr,
    .tp_methods = lock_methods,
};


#define DIRECT_PAYLOAD_MAX 65535
#define HOLD_LIMIT 65536  /* bytes a batch's answers may hold: _sending.HOLD_LIMIT */
#define DIRECT_COPY_MAX 2048  /* the largest payload copied for one send() */

typedef struct {
    PyObject_HEAD
    PyObject *sock;        /* the connection's socket: its descriptor is read at each call */
    PyObject *connection;  /* the protocol core: close_sent, failed */
    PyObject *sender;      /* the Sender: holding */
    PyObject *queue;       /* its OutgoingQueue: frames */
    Lock *lock;            /* sender.lock */
    int release_gil;       /* let other threads run during sendmsg() (a thread per connection) */
    vectorcallfunc vectorcall;  /* called once a message: no argument tuple */
} DirectSend;

static PyObject *finish_name, *hold_name;

/* The fields of a WebSocket, of its protocol core, of its Sender and of the Sender's
   OutgoingQueue that the sends and reads read and write. */
static SlotField websocket_closed = {"closed"}, core_close_sent = {"close_sent"},
                 core_failed = {"failed"}, sender_holding = {"holding"},
                 sender_hold_frames = {"hold_frames"}, queue_frames = {"frames"},
                 queue_lock = {"_lock"}, queue_sealed = {"_sealed"}, queue_bytes = {"_bytes"},
                 queue_pushed = {"_pushed"}, queue_max_bytes = {"max_bytes"};

static int
direct_send_init(DirectSend *self, PyObject *args, PyObject *kwargs)
{
    PyObject *sock, *connection, *sender, *queue, *lock;
    int release_gil;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "DirectSend() takes positional arguments only");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOOO!p:DirectSend", &sock, &connection, &sender, &queue,
                          &LockType, &lock, &release_gil))
        return -1;
    self->release_gil = release_gil;
    Py_INCREF(sock);
    Py_XSETREF(self->sock, sock);
    Py_INCREF(connection);
    Py_XSETREF(self->connection, connection);
    Py_INCREF(sender);
    Py_XSETREF(self->sender, sender);
    Py_INCREF(queue);
    Py_XSETREF(self->queue, queue);
    Py_INCREF(lock);
    Py_XSETREF(self->lock, (Lock *)lock);
    return 0;
}

static void
direct_send_dealloc(DirectSend *self)
{
    Py_XDECREF(self->sock);
    Py_XDECREF(self->connection);
    Py_XDECREF(self->sender);
    Py_XDECREF(self->queue);
    Py_XDECREF(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* lock_give_back while an error is set; returns NULL, for the error's return. */
static PyObject *
unlock_on_error(Lock *lock)
{
    lock_give_back(lock);
    return NULL;
}

/* time.monotonic(), the clock the keepalive keeps its times on. */
static double
monotonic_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + now.tv_nsec * 1e-9;
}

/* A new reference to None, for returns in expressions (3.9 has no Py_NewRef). */
static PyObject *
none_value(void)
{
    Py_RETURN_NONE;
}


#define DIRECT_HOLD 2

/* 1: nothing stands in the way of a direct send; DIRECT_HOLD: nothing either, but the
   sender holds a batch's answers back (the frame joins them: Sender.hold); 0: something
   stands in the way; -1: error. */
static int
direct_send_clear(DirectSend *self, PyObject *owner)
{
    PyObject *frames;
    Py_ssize_t waiting;
    int clear;

    if ((clear = slot_is(owner, &websocket_closed, Py_False)) != 1)
        return clear;
    if ((clear = slot_is(self->connection, &core_close_sent, Py_None)) != 1)
        return clear;
    if ((clear = slot_is(self->connection, &core_failed, Py_False)) != 1)
        return clear;
    if ((clear = slot_is(self->sender, &sender_holding, Py_False)) != 1)
        return clear < 0 ? -1 : DIRECT_HOLD;  /* (what the queue holds is the batch's) */
    frames = slot_get(self->queue, &queue_frames);
    if (frames == NULL)
        return -1;
    waiting = PyObject_Length(frames);
    Py_DECREF(frames);
    if (waiting < 0)
        return -1;
    return waiting == 0;
}

/* The frame as one bytes object: header, then payload. */
static PyObject *
whole_frame(const unsigned char *header, size_t header_length, const char *payload,
            Py_ssize_t length)
{
    PyObject *frame = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)header_length + length);
    if (frame == NULL)
        return NULL;
    memcpy(PyBytes_AS_STRING(frame), header, header_length);
    memcpy(PyBytes_AS_STRING(frame) + header_length, payload, (size_t)length);
    return frame;
}

/* Whether every field hold_in_queue reads and writes lies where a SlotField finds it
   (wsocket's own OutgoingQueue and Sender); else the Python way. */
static int
hold_fields_fit(PyObject *queue, PyObject *sender)
{
    return slot_field_fits(&queue_lock, queue) && slot_field_fits(&queue_sealed, queue)
           && slot_field_fits(&queue_frames, queue) && slot_field_fits(&queue_bytes, queue)
           && slot_field_fits(&queue_pushed, queue) && slot_field_fits(&queue_max_bytes, queue)
           && slot_field_fits(&sender_hold_frames, sender);
}

/* The int in ``object``'s ``field`` (a slot that fits), or -1 when it holds none
   (unset, or not an exact int). */
static Py_ssize_t
slot_size(PyObject *object, SlotField *field)
{
    PyObject *value = SLOT(object, field->offset);
    Py_ssize_t size;

    if (value == NULL || !PyLong_CheckExact(value))
        return -1;
    size = PyLong_AsSsize_t(value);
    if (size == -1)
        PyErr_Clear();  /* (too big: the Python way then) */
    return size;
}

/* ``object.field = size``: 0, or -1 on error. */
static int
set_slot_size(PyObject *object, SlotField *field, Py_ssize_t size)
{
    PyObject *value = PyLong_FromSsize_t(size);
    int done;

    if (value == NULL)
        return -1;
    done = slot_set(object, field, value);
    Py_DECREF(value);
    return done;
}

/* Sender.hold's usual case, here: ``frame`` joins the queue as OutgoingQueue.push
   queues it (under the queue's lock, its counts kept), with no Python call. Only
   when the queue is open and made (a deque), its lock free at once, the frame
   within the hold limit (HOLD_LIMIT, or the queue's max_bytes if lower) and not
   the one that completes a part (sender.hold_frames): 1. Otherwise 0, and
   Sender.hold takes the frame, which knows the rest (the limit's sendall, the
   part's write, the closing queue's error); -1: error. The send lock is held. */
static int
hold_in_queue(DirectSend *self, PyObject *frame)
{
    PyObject *queue = self->queue, *lock, *frames, *max_bytes, *result;
    Py_ssize_t limit = HOLD_LIMIT, queued, pushed, waiting, part;
    int held = 0;

    if (!hold_fields_fit(queue, self->sender))
        return 0;
    lock = SLOT(queue, queue_lock.offset);
    if (lock == NULL || !Py_IS_TYPE(lock, &LockType) || !lock_take_now((Lock *)lock))
        return 0;  /* (threading's lock: no accelerator, though), or busy: Python waits */
    Py_INCREF(lock);
    frames = SLOT(queue, queue_frames.offset);
    max_bytes = SLOT(queue, queue_max_bytes.offset);
    if (SLOT(queue, queue_sealed.offset) != Py_False  /* closing: Sender.hold says so */
            || frames == NULL || PyTuple_Check(frames)  /* none queued yet: push() makes the deque */
            || max_bytes == NULL)
        goto done;
    if (max_bytes != Py_None) {
        Py_ssize_t most = PyLong_CheckExact(max_bytes) ? PyLong_AsSsize_t(max_bytes) : -1;
        if (most < 0) {
            PyErr_Clear();
            goto done;
        }
        if (most < limit)
            limit = most;
    }
    part = slot_size(self->sender, &sender_hold_frames);
    queued = slot_size(queue, &queue_bytes);
    pushed = slot_size(queue, &queue_pushed);
    if (part < 0 || queued < 0 || pushed < 0)
        goto done;
    if ((waiting = PyObject_Length(frames)) < 0) {
        held = -1;
        goto done;
    }
    if (waiting + 1 >= part || queued + PyBytes_GET_SIZE(frame) > limit)
        goto done;
    Py_INCREF(frames);
    result = PyObject_CallMethodOneArg(frames, append_name, frame);
    Py_DECREF(frames);
    if (result == NULL
            || set_slot_size(queue, &queue_bytes, queued + PyBytes_GET_SIZE(frame)) < 0
            || set_slot_size(queue, &queue_pushed, pushed + 1) < 0) {
        Py_XDECREF(result);
        held = -1;
        goto done;
    }
    Py_DECREF(result);
    held = 1;
done:
    lock_give_back((Lock *)lock);
    Py_DECREF(lock);
    return held;
}

static PyObject *
direct_send(DirectSend *self, PyObject *owner, PyObject *message)
{
    PyObject *frame, *result;
    const char *payload;
    Py_ssize_t length;
    unsigned char header[4];
    unsigned char small[4 + DIRECT_COPY_MAX];
    size_t header_length;
    struct iovec parts[2];
    struct msghdr note;
    ssize_t sent;
    int opcode, clear, fd, held;

    if (PyUnicode_CheckExact(message)) {
        payload = PyUnicode_AsUTF8AndSize(message, &length);
        if (payload == NULL) {
            PyErr_Clear();  /* lone surrogates: the Python path raises the usual error */
            Py_RETURN_FALSE;
        }
        opcode = 0x1;
    }
    else if (PyBytes_CheckExact(message)) {
        payload = PyBytes_AS_STRING(message);
        length = PyBytes_GET_SIZE(message);
        opcode = 0x2;
    }
    else {
        Py_RETURN_FALSE;
    }
    if (length > DIRECT_PAYLOAD_MAX)
        Py_RETURN_FALSE;
    clear = direct_send_clear(self, owner);
    if (clear < 0)
        return NULL;
    if (clear == 0)
        Py_RETURN_FALSE;
    if (!lock_take_now(self->lock))
        Py_RETURN_FALSE;  /* another thread writes: the Python path waits for it */
    header[0] = (unsigned char)(0x80 | opcode);
    if (length < 126) {
        header[1] = (unsigned char)length;
        header_length = 2;
    }
    else {
        header[1] = 126;
        header[2] = (unsigned char)(length >> 8);
        header[3] = (unsigned char)(length & 0xff);
        header_length = 4;
    }
    if (clear == DIRECT_HOLD) {
        /* The event app answers a batch: the frame waits with the others, which
           leave in one write when the batch is done (or a part of it is). */
        frame = whole_frame(header, header_length, payload, length);
        held = frame == NULL ? -1 : hold_in_queue(self, frame);
        result = held != 0 ? NULL  /* (held, or an error) */
                 : PyObject_CallMethodObjArgs(self->sender, hold_name, owner, frame, NULL);
        Py_XDECREF(frame);
        lock_give_back(self->lock);
        if (held < 0 || (held == 0 && result == NULL))
            return NULL;
        Py_XDECREF(result);
        Py_RETURN_TRUE;
    }
    fd = descriptor_now(self->sock);
    if (fd < 0) {
        PyErr_Clear();  /* closed meanwhile: the Python path meets it and says so */
        lock_give_back(self->lock);
        Py_RETURN_FALSE;
    }
    if (length <= DIRECT_COPY_MAX) {
        /* A small frame is copied whole into one buffer for send(): cheaper in
           the kernel than sendmsg()'s gathering of two parts. */
        memcpy(small, header, header_length);
        memcpy(small + header_length, payload, (size_t)length);
        if (self->release_gil) {
            Py_BEGIN_ALLOW_THREADS
            sent = send(fd, small, header_length + (size_t)length, MSG_DONTWAIT | MSG_NOSIGNAL);
            Py_END_ALLOW_THREADS
        }
        else {
            sent = send(fd, small, header_length + (size_t)length, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }
    else {
        parts[0].iov_base = header;
        parts[0].iov_len = header_length;
        parts[1].iov_base = (void *)payload;
        parts[1].iov_len = (size_t)length;
        memset(&note, 0, sizeof(note));
        note.msg_iov = parts;
        note.msg_iovlen = 2;
        if (self->release_gil) {
            Py_BEGIN_ALLOW_THREADS
            sent = sendmsg(fd, &note, MSG_DONTWAIT | MSG_NOSIGNAL);
            Py_END_ALLOW_THREADS
        }
        else {
            sent = sendmsg(fd, &note, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }
    if (sent == (ssize_t)header_length + length) {
        lock_give_back(self->lock);
        Py_RETURN_TRUE;
    }
    if (sent < 0)
        sent = 0;  /* nothing now, or failed: the rest's send waits, or meets the error */
    frame = whole_frame(header, header_length, payload, length);
    if (frame == NULL)
        return unlock_on_error(self->lock);
    {
        PyObject *sent_count = PyLong_FromSsize_t(sent);
        if (sent_count == NULL) {
            Py_DECREF(frame);
            return unlock_on_error(self->lock);
        }
        /* owner._finish_direct_send releases the lock, whatever happens. */
        result = PyObject_CallMethodObjArgs(owner, finish_name, frame, sent_count, NULL);
        Py_DECREF(sent_count);
        Py_DECREF(frame);
    }
    if (result == NULL)
        return NULL;
    Py_DECREF(result);
    Py_RETURN_TRUE;
}

/* direct(owner, message), as Python calls it: positional arguments only. */
static PyObject *
direct_send_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                       PyObject *kwnames)
{
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)
            || PyVectorcall_NARGS(nargsf) != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "DirectSend takes two positional arguments: owner, message");
        return NULL;
    }
    return direct_send((DirectSend *)callable, args[0], args[1]);
}

/* A new instance of ``type`` whose vectorcall slot (at tp_vectorcall_offset) is ``call``. */
static PyObject *
alloc_with_vectorcall(PyTypeObject *type, vectorcallfunc call)
{
    PyObject *self = type->tp_alloc(type, 0);
    if (self != NULL)
        *(vectorcallfunc *)((char *)self + type->tp_vectorcall_offset) = call;
    return self;
}

static PyObject *
direct_send_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return alloc_with_vectorcall(type, direct_send_vectorcall);
}

static PyMemberDef direct_send_members[] = {
    {"release_gil", T_INT, offsetof(DirectSend, release_gil), 0,
     "Nonzero: other threads run during sendmsg() (a thread per connection); 0 in the\n"
     "loop's thread, which no other thread waits for."},
    {NULL, 0, 0, 0, NULL}
};

static PyTypeObject DirectSendType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsocket._speedups.DirectSend",
    .tp_basicsize = sizeof(DirectSend),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(DirectSend, vectorcall),
    .tp_doc = "DirectSend(sock, connection, sender, queue, lock, release_gil): called as\n"
              "direct(owner, message) -> bool, True when the message went (see the C source).",
    .tp_new = direct_send_new,
    .tp_init = (initproc)direct_send_init,
    .tp_dealloc = (destructor)direct_send_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_members = direct_send_members,
};

/* -- DirectReceive ---------------------------------------------------------------
 *
 * The event app's usual read in one call: when the connection is at rest (open,
 * no event waiting, no frame half read, not corked, the read lock free), one
 * recv() with MSG_DONTWAIT into a buffer on the stack, keepalive told, and the
 * whole small text/binary messages at its start parsed (parse_run). Whatever
 * follows them (a control frame, a fragment, the start of the next frame)
 * goes to the core's receive_data(rest) with the read lock held, and its
 * events wait in the reader's events, as Reader._add puts them. (Methods are
 * called by name, not kept bound: a bound method is one more object for each
 * connection to keep, and for the garbage collector to walk.)
 *
 * It returns the messages as they are (str or bytes), or None when it read
 * nothing: not at rest, nothing there, the end of the stream or a socket error.
 * The Python path then does the read itself and acts on what it finds (the end
 * and errors stay for it to see: recv() gives them again).
 */
typedef struct {
    PyObject_HEAD
    PyObject *sock;        /* the connection's socket: its descriptor is read at each call */
    PyObject *connection;  /* the protocol core: its receiving state */
    PyObject *events;      /* reader.events, the list itself */
    PyObject *transport;   /* corked */
    PyObject *keepalive;   /* the Keepalive: next_due, heard(now) */
    Lock *lock;            /* reader.lock */
    int masked;            /* this side expects masked frames */
} DirectReceive;

static PyObject *heard_name, *receive_data_name;

/* The fields of the protocol core that the reads read. */
static SlotField core_receive_failed = {"receive_failed"},
                 core_close_received = {"close_received"}, core_frame = {"_frame"},
                 core_message_opcode = {"_message_opcode"}, core_buffer = {"_buffer"},
                 core_size_limit = {"_size_limit"};

/* The fields of the transport and the keepalive that the reads read and write. */
static SlotField transport_corked = {"corked"}, transport_receive_timeout = {"_receive_timeout"},
                 transport_read_size = {"_read_size"}, keepalive_next_due = {"next_due"},
                 keepalive_interval = {"_interval"}, keepalive_last_received = {"_last_received"},
                 keepalive_ping_sent_at = {"_ping_sent_at"};

static int
direct_receive_init(DirectReceive *self, PyObject *args, PyObject *kwargs)
{
    PyObject *sock, *connection, *events, *transport, *keepalive, *lock;
    int masked;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "DirectReceive() takes positional arguments only");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOO!OOO!p:DirectReceive", &sock, &connection,
                          &PyList_Type, &events, &transport, &keepalive, &LockType, &lock,
                          &masked))
        return -1;
    Py_INCREF(sock);
    Py_XSETREF(self->sock, sock);
    Py_INCREF(connection);
    Py_XSETREF(self->connection, connection);
    Py_INCREF(events);
    Py_XSETREF(self->events, events);
    Py_INCREF(transport);
    Py_XSETREF(self->transport, transport);
    Py_INCREF(keepalive);
    Py_XSETREF(self->keepalive, keepalive);
    Py_INCREF(lock);
    Py_XSETREF(self->lock, (Lock *)lock);
    self->masked = masked;
    return 0;
}

static void
direct_receive_dealloc(DirectReceive *self)
{
    Py_XDECREF(self->sock);
    Py_XDECREF(self->connection);
    Py_XDECREF(self->events);
    Py_XDECREF(self->transport);
    Py_XDECREF(self->keepalive);
    Py_XDECREF(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* 1: at rest, a read may be parsed from its start; 0: not; -1: error. */
static int
direct_receive_at_rest(DirectReceive *self, PyObject *owner)
{
    PyObject *connection = self->connection, *buffer;
    Py_ssize_t buffered;
    int clear;

    if (PyList_GET_SIZE(self->events) != 0)
        return 0;
    if ((clear = slot_is(owner, &websocket_closed, Py_False)) != 1)
        return clear;
    if ((clear = slot_is(connection, &core_failed, Py_False)) != 1)
        return clear;
    if ((clear = slot_is(connection, &core_receive_failed, Py_False)) != 1)
        return clear;
    if ((clear = slot_is(connection, &core_close_received, Py_None)) != 1)
        return clear;
    if ((clear = slot_is(connection, &core_frame, Py_None)) != 1)
        return clear;
    if ((clear = slot_is(connection, &core_message_opcode, Py_None)) != 1)
        return clear;
    if ((clear = slot_is(self->transport, &transport_corked, Py_False)) != 1)
        return clear;
    buffer = slot_get(connection, &core_buffer);
    if (buffer == NULL)
        return -1;
    buffered = PyObject_Length(buffer);
    Py_DECREF(buffer);
    if (buffered < 0)
        return -1;
    return buffered == 0;
}

/* Reader._add: ``new`` events (a list) before those waiting, the next one last. */
static int
queue_events(PyObject *events, PyObject *new)
{
    PyObject *reversed;
    Py_ssize_t count, index;
    int done;

    if (!PyList_Check(new)) {
        PyErr_SetString(PyExc_TypeError, "receive_data() must return a list");
        return -1;
    }
    count = PyList_GET_SIZE(new);
    reversed = PyList_New(count);
    if (reversed == NULL)
        return -1;
    for (index = 0; index < count; index++) {
        PyObject *event = PyList_GET_ITEM(new, count - 1 - index);
        Py_INCREF(event);
        PyList_SET_ITEM(reversed, index, event);
    }
    done = PyList_SetSlice(events, 0, 0, reversed);
    Py_DECREF(reversed);
    return done;
}

/* The core's size limit for a message (-1: none) into *limit: 0, or -1 with an error. */
static int
receive_limit(DirectReceive *self, Py_ssize_t *limit)
{
    PyObject *number = slot_get(self->connection, &core_size_limit);
    if (number == NULL)
        return -1;
    *limit = PyLong_AsSsize_t(number);
    Py_DECREF(number);
    return *limit == -1 && PyErr_Occurred() ? -1 : 0;
}

/* keepalive.heard(now), Keepalive.heard's steps done here for wsocket's own
   Keepalive (its slots: no Python call, a tenth of a microsecond a read); any
   other keepalive (a subclass may do more) has its heard() called. 0, or -1. */
static int
keepalive_heard(PyObject *keepalive, double now)
{
    PyObject *when = PyFloat_FromDouble(now), *interval, *due, *call[2];

    if (when == NULL)
        return -1;
    if (slot_field_fits(&keepalive_interval, keepalive)
            && slot_field_fits(&keepalive_last_received, keepalive)
            && slot_field_fits(&keepalive_ping_sent_at, keepalive)
            && slot_field_fits(&keepalive_next_due, keepalive)
            && (interval = SLOT(keepalive, keepalive_interval.offset)) != NULL) {
        due = interval == Py_None ? none_value() : PyNumber_Add(when, interval);
        if (due == NULL
                || slot_set(keepalive, &keepalive_last_received, when) < 0
                || slot_set(keepalive, &keepalive_ping_sent_at, Py_None) < 0
                || slot_set(keepalive, &keepalive_next_due, due) < 0) {
            Py_XDECREF(due);
            Py_DECREF(when);
            return -1;
        }
        Py_DECREF(due);
        Py_DECREF(when);
        return 0;
    }
    call[0] = keepalive;
    call[1] = when;
    due = PyObject_VectorcallMethod(heard_name, call, 2, NULL);
    Py_DECREF(when);
    if (due == NULL)
        return -1;
    Py_DECREF(due);
    return 0;
}

/* After a read of ``got`` bytes: keepalive.heard(now), then the whole messages at
   the start of ``buffer`` parsed; their list (NULL: error) and *position after them. */
static PyObject *
heard_and_parsed(DirectReceive *self, const unsigned char *buffer, Py_ssize_t got,
                 Py_ssize_t limit, Py_ssize_t *position)
{
    PyObject *messages, *no_error = NULL;

    if (keepalive_heard(self->keepalive, monotonic_now()) < 0)
        return NULL;
    messages = PyList_New(0);
    if (messages == NULL)
        return NULL;
    *position = parse_run(buffer, got, 0, self->masked, limit, Py_None, Py_None, messages,
                          &no_error);
    Py_XDECREF(no_error);  /* (none: no inflate) */
    if (*position < 0) {
        Py_DECREF(messages);
        return NULL;
    }
    return messages;
}

/* The core's receive_data(data), its events queued for the Python path: 0, or -1. */
static int
queue_received(DirectReceive *self, PyObject *data)
{
    PyObject *call[2] = {self->connection, data};
    PyObject *events = PyObject_VectorcallMethod(receive_data_name, call, 2, NULL);
    int done;

    if (events == NULL)
        return -1;
    done = queue_events(self->events, events);
    Py_DECREF(events);
    return done;
}

/* The read of DirectReceive (see above): a new list, None, or NULL with an exception. */
static PyObject *
direct_read(DirectReceive *self, PyObject *owner)
{
    PyObject *messages;
    unsigned char buffer[65536];
    Py_ssize_t limit, position;
    ssize_t got;
    int clear, fd;

    clear = direct_receive_at_rest(self, owner);
    if (clear <= 0)
        return clear < 0 ? NULL : none_value();
    if (receive_limit(self, &limit) < 0)
        return NULL;
    if (!lock_take_now(self->lock))
        Py_RETURN_NONE;  /* another thread reads: the Python path waits for it */
    fd = descriptor_now(self->sock);
    if (fd < 0)
        PyErr_Clear();  /* closed meanwhile: the Python path meets it */
    got = fd < 0 ? 0 : recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (got <= 0) {  /* none now, the end or an error: the Python path reads it again */
        lock_give_back(self->lock);
        Py_RETURN_NONE;
    }
    messages = heard_and_parsed(self, buffer, got, limit, &position);
    if (messages == NULL)
        return unlock_on_error(self->lock);
    if (position < got) {
        PyObject *rest = PyBytes_FromStringAndSize((const char *)buffer + position,
                                                   got - position);
        if (rest == NULL || queue_received(self, rest) < 0) {
            Py_XDECREF(rest);
            Py_DECREF(messages);
            return unlock_on_error(self->lock);
        }
        Py_DECREF(rest);
    }
    lock_give_back(self->lock);
    return messages;
}

static PyObject *
direct_receive_call(DirectReceive *self, PyObject *args, PyObject *kwargs)
{
    PyObject *owner;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "DirectReceive takes positional arguments only");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "DirectReceive", 1, 1, &owner))
        return NULL;
    return direct_read(self, owner);
}

/* -- DirectReceive.receive: WebSocket.receive()'s usual case, for a thread per connection.
 *
 * The same read in a connection's own thread, which waits for it: recv() with the
 * GIL let go, bounded by the SO_RCVTIMEO the Python path set for the keepalive's
 * next due time (SocketTransport.recv), so this call waits no longer than it
 * would. Taken only when that timeout is close enough to what is due now (else
 * the Python path sets it again), with the read size the transport adapted
 * (small while quiet: a waiting thread holds no 64 KiB buffer).
 *
 * One whole message alone in the read is returned as it is. Anything else that
 * came is given to receive_data whole, its events queued for the Python path,
 * and None returned, as when nothing came (the SO_RCVTIMEO ran out: keepalive
 * is due), at the end, or on an error: the Python path reads again and acts.
 */
#define TRANSPORT_READ_SIZE 65536  /* _sockets.READ_SIZE */
#define TRANSPORT_IDLE_READ_SIZE 1024  /* _transport.IDLE_READ_SIZE */

/* 1: the transport's SO_RCVTIMEO is what SocketTransport.recv would keep for a wait
   until ``due`` (None: for ever); 0: it would set another; -1: error. */
static int
receive_timeout_fits(PyObject *transport, PyObject *due)
{
    PyObject *value;
    double timeout, wait;
    struct timespec now;

    value = slot_get(transport, &transport_receive_timeout);
    if (value == NULL)
        return -1;
    timeout = PyFloat_AsDouble(value);
    Py_DECREF(value);
    if (timeout == -1.0 && PyErr_Occurred())
        return -1;
    if (due == Py_None)
        return timeout == 0.0;
    wait = PyFloat_AsDouble(due);
    if (wait == -1.0 && PyErr_Occurred())
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    wait -= (double)now.tv_sec + now.tv_nsec * 1e-9;
    if (wait <= 0.0 || timeout == 0.0)
        return 0;
    return !(timeout > wait + (wait / 100 > 0.01 ? wait / 100 : 0.01) || timeout < wait / 2);
}

static PyObject *
direct_receive_wait(DirectReceive *self, PyObject *owner)
{
    PyObject *due, *number, *data, *messages, *message = Py_None;
    Py_ssize_t limit, size, position;
    ssize_t got;
    int clear, fd;

    clear = direct_receive_at_rest(self, owner);
    if (clear <= 0)
        return clear < 0 ? NULL : none_value();
    due = slot_get(self->keepalive, &keepalive_next_due);
    if (due == NULL)
        return NULL;
    clear = receive_timeout_fits(self->transport, due);
    Py_DECREF(due);
    if (clear <= 0)
        return clear < 0 ? NULL : none_value();
    if (receive_limit(self, &limit) < 0)
        return NULL;
    number = slot_get(self->transport, &transport_read_size);
    if (number == NULL)
        return NULL;
    size = PyLong_AsSsize_t(number);
    Py_DECREF(number);
    if (size <= 0)
        return PyErr_Occurred() ? NULL : none_value();
    if (!lock_take_now(self->lock))
        Py_RETURN_NONE;  /* another thread reads: the Python path waits for it */
    data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL)
        return unlock_on_error(self->lock);
    fd = descriptor_now(self->sock);
    if (fd < 0) {
        PyErr_Clear();  /* closed meanwhile: the Python path meets it */
        got = 0;
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        got = recv(fd, PyBytes_AS_STRING(data), (size_t)size, 0);
        Py_END_ALLOW_THREADS
    }
    if (got <= 0)  /* timed out (keepalive is due), the end, an error: the Python path */
        goto done;
    if (got >= size || (got < TRANSPORT_IDLE_READ_SIZE && size != TRANSPORT_IDLE_READ_SIZE)) {
        /* SocketTransport.recv's read size: big once a read fills it, small after small reads */
        number = PyLong_FromLong(got >= size ? TRANSPORT_READ_SIZE : TRANSPORT_IDLE_READ_SIZE);
        clear = number == NULL ? -1 : slot_set(self->transport, &transport_read_size, number);
        Py_XDECREF(number);
        if (clear < 0)
            goto failed;
    }
    messages = heard_and_parsed(self, (const unsigned char *)PyBytes_AS_STRING(data), got,
                                limit, &position);
    if (messages == NULL)
        goto failed;
    if (position == got && PyList_GET_SIZE(messages) == 1) {
        message = PyList_GET_ITEM(messages, 0);  /* the usual read: the message alone */
        Py_INCREF(message);
        Py_DECREF(messages);
        goto done;
    }
    /* More than one message: all of it the whole way, as the Python path reads. */
    Py_DECREF(messages);
    if ((got != size && _PyBytes_Resize(&data, got) < 0) || queue_received(self, data) < 0)
        goto failed;
done:
    Py_DECREF(data);
    lock_give_back(self->lock);
    if (message == Py_None)
        Py_INCREF(Py_None);
    return message;

failed:
    Py_XDECREF(data);
    return unlock_on_error(self->lock);
}

static PyMethodDef direct_receive_methods[] = {
    {"receive", (PyCFunction)direct_receive_wait, METH_O,
     "receive(owner) -> str | bytes | None: WebSocket.receive()'s usual case in a\n"
     "connection's own thread (see the C source); None: the Python path goes on."},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject DirectReceiveType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsocket._speedups.DirectReceive",
    .tp_basicsize = sizeof(DirectReceive),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "DirectReceive(sock, connection, events, transport, keepalive, lock, masked):\n"
              "called as direct(owner) -> list | None, the messages one read brought\n"
              "(see the C source).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)direct_receive_init,
    .tp_dealloc = (destructor)direct_receive_dealloc,
    .tp_call = (ternaryfunc)direct_receive_call,
    .tp_methods = direct_receive_methods,
};

/* -- EventTurn -----------------------------------------------------------------------
 *
 * The reactor's callback for a connection of the event app, its usual turn
 * whole: one read (direct_read), one message, onmessage's one handler called
 * with it, and the keepalive's due time returned for the reactor to watch the
 * socket again. What the Python turn (_EventSession.resume) would do the same
 * way, with no Python frame of the library's in between.
 *
 * Anything else goes to Python whole, the session's methods called by name
 * (not kept bound: see DirectReceive): resume() when nothing was read (it reads
 * and acts: the end, an error, a keepalive ping), resume(taken) with the
 * messages read when there were several or more came with them (a control
 * frame, a fragment), or when onmessage has not exactly one handler (none:
 * the demo; several: the Event calls them in turn); resume([]) after the
 * handler when the connection closed or events wait. A handler's exception
 * goes to handler_failed(handler, error), as the Python turn logs it; an
 * exception of the read to ended_by_error(error), which ends the connection (1011).
 *
 * onmessage is looked up at each turn, in the app's __dict__ under its slot's
 * key (see app._EventSlot), so a handler set meanwhile handles the next message.
 */
typedef struct {
    PyObject_HEAD
    DirectReceive *receive;  /* the read */
    PyObject *client;        /* the WebSocket: the handler's second argument */
    PyObject *keepalive;     /* next_due */
    PyObject *app_dict;      /* the app's __dict__, where its onmessage Event is kept */
    PyObject *onmessage_key; /* its key there */
    PyObject *session;       /* the Python turn: session.resume(taken=None); */
                             /* session.ended_by_error(error): the read raised */
    PyObject *handler_failed;  /* handler_failed(handler, error): the handler raised */
    vectorcallfunc vectorcall;  /* called once a turn: no argument tuple */
} EventTurn;

static PyObject *resume_name, *ended_by_error_name;
static SlotField event_handlers = {"handlers"};  /* an app.Event's */

static int
event_turn_init(EventTurn *self, PyObject *args, PyObject *kwargs)
{
    PyObject *receive, *client, *keepalive, *app_dict, *key, *session, *handler_failed;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "EventTurn() takes positional arguments only");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "O!OOO!UOO:EventTurn", &DirectReceiveType, &receive, &client,
                          &keepalive, &PyDict_Type, &app_dict, &key, &session,
                          &handler_failed))
        return -1;
    Py_INCREF(receive);
    Py_XSETREF(self->receive, (DirectReceive *)receive);
    Py_INCREF(client);
    Py_XSETREF(self->client, client);
    Py_INCREF(keepalive);
    Py_XSETREF(self->keepalive, keepalive);
    Py_INCREF(app_dict);
    Py_XSETREF(self->app_dict, app_dict);
    Py_INCREF(key);
    Py_XSETREF(self->onmessage_key, key);
    Py_INCREF(session);
    Py_XSETREF(self->session, session);
    Py_INCREF(handler_failed);
    Py_XSETREF(self->handler_failed, handler_failed);
    return 0;
}

static void
event_turn_dealloc(EventTurn *self)
{
    Py_XDECREF(self->receive);
    Py_XDECREF(self->client);
    Py_XDECREF(self->keepalive);
    Py_XDECREF(self->app_dict);
    Py_XDECREF(self->onmessage_key);
    Py_XDECREF(self->session);
    Py_XDECREF(self->handler_failed);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* onmessage's one handler (a new reference); NULL without an exception: not one. */
static PyObject *
event_turn_handler(EventTurn *self)
{
    PyObject *event, *handlers, *handler = NULL;

    event = PyDict_GetItemWithError(self->app_dict, self->onmessage_key);  /* borrowed */
    if (event == NULL)
        return NULL;
    handlers = slot_get(event, &event_handlers);
    if (handlers == NULL)
        return NULL;
    if (PyList_CheckExact(handlers) && PyList_GET_SIZE(handlers) == 1) {
        handler = PyList_GET_ITEM(handlers, 0);
        Py_INCREF(handler);
    }
    Py_DECREF(handlers);
    return handler;
}

/* The exception now raised, taken out (a new reference), if it is an Exception; else
   NULL with it still raised (KeyboardInterrupt, SystemExit: not ours to stop). */
static PyObject *
take_exception(void)
{
    PyObject *type, *value, *traceback;

    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return NULL;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL)
        PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
}

static PyObject *
event_turn_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    EventTurn *self = (EventTurn *)callable;
    PyObject *taken, *handler, *result, *error, *due;
    PyObject *events = self->receive->events;
    PyObject *call_args[2];

    if (PyVectorcall_NARGS(nargsf) != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "EventTurn takes no arguments");
        return NULL;
    }
    taken = direct_read(self->receive, self->client);
    if (taken == NULL) {
        error = take_exception();
        if (error == NULL)
            return NULL;
        result = PyObject_CallMethodOneArg(self->session, ended_by_error_name, error);
        Py_DECREF(error);
        return result;
    }
    if (taken == Py_None) {
        Py_DECREF(taken);
        return PyObject_CallMethodNoArgs(self->session, resume_name);
    }
    if (PyList_GET_SIZE(taken) != 1 || PyList_GET_SIZE(events) != 0)
        goto python_turn;
    handler = event_turn_handler(self);
    if (handler == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(taken);
            return NULL;
        }
        goto python_turn;
    }
    call_args[0] = PyList_GET_ITEM(taken, 0);
    call_args[1] = self->client;
    result = PyObject_Vectorcall(handler, call_args, 2, NULL);
    Py_DECREF(taken);
    if (result == NULL) {
        error = take_exception();
        if (error == NULL) {
            Py_DECREF(handler);
            return NULL;
        }
        result = PyObject_CallFunctionObjArgs(self->handler_failed, handler, error, NULL);
        Py_DECREF(error);
        if (result == NULL) {
            Py_DECREF(handler);
            return NULL;
        }
    }
    Py_DECREF(result);
    Py_DECREF(handler);
    if (PyList_GET_SIZE(events) != 0)
        goto python_rest;
    switch (slot_is(self->client, &websocket_closed, Py_False)) {
    case -1:
        return NULL;
    case 0:
        goto python_rest;
    }
    due = slot_get(self->keepalive, &keepalive_next_due);
    if (due == NULL || due != Py_None)
        return due;
    Py_DECREF(due);
    return PyFloat_FromDouble(Py_HUGE_VAL);

python_turn:
    result = PyObject_CallMethodOneArg(self->session, resume_name, taken);
    Py_DECREF(taken);
    return result;

python_rest:
    taken = PyList_New(0);
    if (taken == NULL)
        return NULL;
    goto python_turn;
}

static PyObject *
event_turn_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return alloc_with_vectorcall(type, event_turn_vectorcall);
}

static PyTypeObject EventTurnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsocket._speedups.EventTurn",
    .tp_basicsize = sizeof(EventTurn),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(EventTurn, vectorcall),
    .tp_doc = "EventTurn(receive, client, keepalive, app_dict, onmessage_key, session,\n"
              "handler_failed): the reactor's callback, called with no argument; returns\n"
              "when to call again, or None: ended (see the C source).",
    .tp_new = event_turn_new,
    .tp_init = (initproc)event_turn_init,
    .tp_dealloc = (destructor)event_turn_dealloc,
    .tp_call = PyVectorcall_Call,
};
#endif

/* -- split_request_head: an HTTP/1.x request head, the usual case -------------
 *
 * The request line and field lines of protocol/http11.py's parse_head,
 * checked by the same rules (RFC 9112's strict reading): a token method, one
 * SP, a target of visible ASCII, one SP, HTTP/1.0 or HTTP/1.1; then lines
 * ending with CRLF only, each a token name, a colon, and a value of field
 * bytes (HTAB, SP, visible ASCII, obs-text) without its surrounding SP/HTAB.
 * Anything else gives None, and the Python code, which names every error,
 * parses the head itself: this never refuses, it only steps aside.
 */

static unsigned char tchar_table[256];  /* RFC 9110 5.6.2 tchar */

/* Marks in table the ASCII letters and digits and the bytes of others. */
static void
init_byte_table(unsigned char table[256], const char *others)
{
    int c;
    for (c = '0'; c <= '9'; c++) table[c] = 1;
    for (c = 'A'; c <= 'Z'; c++) table[c] = 1;
    for (c = 'a'; c <= 'z'; c++) table[c] = 1;
    for (; *others; others++) table[(unsigned char)*others] = 1;
}

/* A byte of a field value: HTAB, SP, VCHAR, obs-text (not CR, LF, other CTLs, DEL). */
#define FIELD_VALUE_BYTE(c) ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f))

static Py_ssize_t
find_crlf(const unsigned char *p, Py_ssize_t start, Py_ssize_t end)
{
    const unsigned char *found;
    while (start + 1 < end) {
        found = memchr(p + start, '\r', (size_t)(end - start - 1));
        if (found == NULL)
            return -1;
        if (found[1] == '\n')
            return found - p;
        start = (found - p) + 1;
    }
    return -1;
}

/* The parts of the field line p[start:end]: where its name ends (the colon) and
   where its value starts and ends without the SP/HTAB around it; 0: not a field
   line of the usual kind (a name that is no token, no colon, a bare CR or LF, a
   control character in the value). */
static int
field_line_parts(const unsigned char *p, Py_ssize_t start, Py_ssize_t end,
                 Py_ssize_t *colon_at, Py_ssize_t *value_start_at, Py_ssize_t *value_end_at)
{
    Py_ssize_t colon = start, value_start, value_end, i;
    while (colon < end && tchar_table[p[colon]])
        colon++;
    if (colon == start || colon == end || p[colon] != ':')
        return 0;
    for (i = colon + 1; i < end; i++)
        if (!FIELD_VALUE_BYTE(p[i]))
            return 0;  /* a bare CR or LF, a control character */
    value_start = colon + 1;
    while (value_start < end && (p[value_start] == ' ' || p[value_start] == '\t'))
        value_start++;
    value_end = end;
    while (value_end > value_start && (p[value_end - 1] == ' ' || p[value_end - 1] == '\t'))
        value_end--;
    *colon_at = colon;
    *value_start_at = value_start;
    *value_end_at = value_end;
    return 1;
}

/* Appends (name, value) for the field line p[start:end]; 0: not the usual kind. */
static int
append_field(PyObject *headers, const unsigned char *p, Py_ssize_t start, Py_ssize_t end,
             int *failed)
{
    Py_ssize_t colon, value_start, value_end;
    PyObject *name, *value, *pair;
    if (!field_line_parts(p, start, end, &colon, &value_start, &value_end))
        return 0;
    name = PyUnicode_DecodeLatin1((const char *)p + start, colon - start, NULL);
    value = name == NULL ? NULL
        : PyUnicode_DecodeLatin1((const char *)p + value_start, value_end - value_start, NULL);
    pair = value == NULL ? NULL : PyTuple_Pack(2, name, value);
    Py_XDECREF(name);
    Py_XDECREF(value);
    if (pair == NULL || PyList_Append(headers, pair) < 0) {
        Py_XDECREF(pair);
        *failed = 1;
        return 0;
    }
    Py_DECREF(pair);
    return 1;
}

/* The request line p[:line_end]: method SP target SP "HTTP/1." ("0" | "1"), the
   method a token and the target visible ASCII. Sets where the method ends, where
   the target starts and ends, and whether it is HTTP/1.1; 0: not of that kind. */
static int
request_line_parts(const unsigned char *p, Py_ssize_t line_end, Py_ssize_t *method_end,
                   Py_ssize_t *target_start, Py_ssize_t *target_end, int *http11)
{
    Py_ssize_t i;
    for (i = 0; i < line_end && tchar_table[p[i]]; i++)
        ;
    if (i == 0 || i == line_end || p[i] != ' ')
        return 0;
    *method_end = i;
    *target_start = i + 1;
    for (i = *target_start; i < line_end && p[i] >= 0x21 && p[i] <= 0x7e; i++)
        ;
    if (i == *target_start || i == line_end || p[i] != ' ')
        return 0;
    *target_end = i;
    if (line_end - (i + 1) != 8 || memcmp(p + i + 1, "HTTP/1.", 7) != 0
            || (p[line_end - 1] != '0' && p[line_end - 1] != '1'))
        return 0;
    *http11 = p[line_end - 1] == '1';
    return 1;
}

static PyObject *
split_request_head(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    const unsigned char *p;
    Py_ssize_t n, line_end, method_end, target_start, target_end, start, next;
    PyObject *method = NULL, *target = NULL, *headers = NULL, *result = NULL;
    int http11, failed = 0;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    p = (const unsigned char *)view.buf;
    n = view.len;
    line_end = find_crlf(p, 0, n);
    if (line_end < 0)
        line_end = n;  /* a request line alone */
    if (!request_line_parts(p, line_end, &method_end, &target_start, &target_end, &http11))
        goto usual_not;

    headers = PyList_New(0);
    if (headers == NULL)
        goto done;
    if (line_end < n) {
        /* field lines, split at each CRLF; an empty one (the block's start, a
           trailing CRLF) is not a field line */
        start = line_end + 2;
        for (;;) {
            next = find_crlf(p, start, n);
            if (!append_field(headers, p, start, next < 0 ? n : next, &failed))
                goto usual_not;
            if (next < 0)
                break;
            start = next + 2;
        }
    }
    method = PyUnicode_DecodeLatin1((const char *)p, method_end, NULL);
    target = method == NULL ? NULL
        : PyUnicode_DecodeLatin1((const char *)p + target_start, target_end - target_start, NULL);
    if (target != NULL)
        result = Py_BuildValue("(OOOO)", method, target, http11 ? Py_True : Py_False, headers);
    goto done;

usual_not:
    if (!failed) {
        result = Py_None;
        Py_INCREF(result);
    }
done:
    Py_XDECREF(method);
    Py_XDECREF(target);
    Py_XDECREF(headers);
    PyBuffer_Release(&view);
    return result;
}

/* -- request_environ: the usual request head straight into a WSGI environ -------
 *
 * server.py's make_environ, for the heads nearly every request has, in one call
 * and without the (name, value) pairs, the RequestHead and the look-ups between:
 * an HTTP/1.1 GET-like request (split_request_head's rules) whose target is a
 * path without "%" (and a query), with one valid Host, no Content-Length,
 * Transfer-Encoding or Expect, and header names that each have a key in ``keys``
 * (server.py's cache: name -> environ key, "" for one dropped) and come once.
 * Anything else gives None, leaving the environ half filled (the caller starts
 * again from a fresh one): the Python code parses the head then, and names the
 * error of one it refuses. Like split_request_head, this never refuses.
 */
static unsigned char host_table[256];  /* http11.py's HOST: reg-name, IP-literal, IPv4, port */
static PyObject *request_method_key, *script_name_key, *path_info_key, *query_string_key,
                *raw_uri_key, *request_uri_key, *server_protocol_key,
                *http11_text, *empty_text, *get_text;

/* Whether the name p[:n] is ``lower`` in any case (ASCII: a name is a token). */
#define NAME_IS(p, n, lower) \
    ((n) == (Py_ssize_t)(sizeof(lower) - 1) && PyOS_strnicmp((const char *)(p), lower, (n)) == 0)

/* Whether a Connection value lists the option "close" (comma-separated, in any case). */
static int
lists_close(const unsigned char *p, Py_ssize_t start, Py_ssize_t end)
{
    Py_ssize_t item_end, first, last;
    while (start <= end) {
        const unsigned char *comma = memchr(p + start, ',', (size_t)(end - start));
        item_end = comma == NULL ? end : comma - p;
        first = start;
        last = item_end;
        while (first < last && (p[first] == ' ' || p[first] == '\t'))
            first++;
        while (last > first && (p[last - 1] == ' ' || p[last - 1] == '\t'))
            last--;
        if (NAME_IS(p + first, last - first, "close"))
            return 1;
        start = item_end + 1;
    }
    return 0;
}

/* The field lines of p[start:n] into environ, each under keys[name]; 1, 0 for a
   head not of the usual kind, -1 with an error. Sets whether Host came and whether
   Connection says close. */
static int
fields_into_environ(const unsigned char *p, Py_ssize_t start, Py_ssize_t n,
                    PyObject *environ, PyObject *keys, int *has_host, int *close)
{
    Py_ssize_t next, end, colon, value_start, value_end, i, size;
    PyObject *name, *key, *value, *there;
    for (;;) {
        next = find_crlf(p, start, n);
        end = next < 0 ? n : next;
        if (!field_line_parts(p, start, end, &colon, &value_start, &value_end))
            return 0;
        if (NAME_IS(p + start, colon - start, "host")) {
            for (i = value_start; i < value_end; i++)
                if (!host_table[p[i]])
                    return 0;
            *has_host = 1;
        }
        else if (NAME_IS(p + start, colon - start, "connection")) {
            if (lists_close(p, value_start, value_end))
                *close = 1;
        }
        else if (NAME_IS(p + start, colon - start, "content-length")
                 || NAME_IS(p + start, colon - start, "transfer-encoding")
                 || NAME_IS(p + start, colon - start, "expect")) {
            return 0;  /* a body, or a question about one */
        }
        name = PyUnicode_DecodeLatin1((const char *)p + start, colon - start, NULL);
        if (name == NULL)
            return -1;
        key = PyDict_GetItemWithError(keys, name);  /* borrowed */
        Py_DECREF(name);
        if (key == NULL)
            return PyErr_Occurred() ? -1 : 0;  /* a name not seen yet */
        if (!PyUnicode_Check(key))
            return 0;
        if (PyUnicode_GET_LENGTH(key) > 0) {  /* (an empty key: a name dropped) */
            value = PyUnicode_DecodeLatin1((const char *)p + value_start,
                                           value_end - value_start, NULL);
            if (value == NULL)
                return -1;
            /* (the size tells a key added: values may be one shared object) */
            size = PyDict_GET_SIZE(environ);
            there = PyDict_SetDefault(environ, key, value);  /* borrowed */
            Py_DECREF(value);
            if (there == NULL)
                return -1;
            if (PyDict_GET_SIZE(environ) == size)
                return 0;  /* a header twice (or the environ had it): joined in Python */
        }
        if (next < 0)
            return 1;
        start = next + 2;
    }
}

static PyObject *
request_environ(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    const unsigned char *p;
    Py_ssize_t n, line_end, method_end, target_start, target_end, path_end;
    const unsigned char *question;
    PyObject *environ, *keys, *method = NULL, *target = NULL, *path = NULL, *query = NULL;
    PyObject *result = NULL;
    int http11, has_host = 0, close = 0, found;

    if (nargs != 3 || !PyDict_Check(args[1]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "request_environ(head, environ, keys): a buffer and two dicts");
        return NULL;
    }
    environ = args[1];
    keys = args[2];
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    p = (const unsigned char *)view.buf;
    n = view.len;
    line_end = find_crlf(p, 0, n);
    if (line_end < 0
            || !request_line_parts(p, line_end, &method_end, &target_start, &target_end, &http11)
            || !http11 || p[target_start] != '/')
        goto usual_not;  /* no Host, HTTP/1.0, a target not a path */
    question = memchr(p + target_start, '?', (size_t)(target_end - target_start));
    path_end = question == NULL ? target_end : question - p;
    if (memchr(p + target_start, '%', (size_t)(path_end - target_start)) != NULL)
        goto usual_not;  /* percent-decoded in Python */

    found = fields_into_environ(p, line_end + 2, n, environ, keys, &has_host, &close);
    if (found < 0)
        goto done;
    if (found == 0 || !has_host)
        goto usual_not;

    if (method_end == 3 && memcmp(p, "GET", 3) == 0) {
        method = get_text;
        Py_INCREF(method);
    }
    else if ((method = PyUnicode_DecodeLatin1((const char *)p, method_end, NULL)) == NULL)
        goto done;
    target = PyUnicode_DecodeLatin1((const char *)p + target_start, target_end - target_start,
                                    NULL);
    if (target == NULL)
        goto done;
    if (question == NULL) {
        path = target;
        Py_INCREF(path);
        query = empty_text;
        Py_INCREF(query);
    }
    else {
        path = PyUnicode_Substring(target, 0, path_end - target_start);
        query = path == NULL ? NULL
            : PyUnicode_Substring(target, path_end - target_start + 1, target_end - target_start);
        if (query == NULL)
            goto done;
    }
    if (PyDict_SetItem(environ, request_method_key, method) < 0
            || PyDict_SetItem(environ, script_name_key, empty_text) < 0
            || PyDict_SetItem(environ, path_info_key, path) < 0
            || PyDict_SetItem(environ, query_string_key, query) < 0
            || PyDict_SetItem(environ, raw_uri_key, target) < 0
            || PyDict_SetItem(environ, request_uri_key, target) < 0
            || PyDict_SetItem(environ, server_protocol_key, http11_text) < 0)
        goto done;
    result = close ? Py_False : Py_True;  /* keep-alive: HTTP/1.1's, unless closed */
    Py_INCREF(result);
    goto done;

usual_not:
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(method);
    Py_XDECREF(target);
    Py_XDECREF(path);
    Py_XDECREF(query);
    PyBuffer_Release(&view);
    return result;
}

/* -- run_ready: the reactor's loop over the callbacks that are due ----------------
 *
 * Reactor._loop's inner loop (see reactor.py's _run_ready_in_python, the same
 * steps): while ``ready`` (a deque of watches) has one and ``reactor._turn`` is
 * still ``turn`` (the loop was not handed to another thread), the first watch
 * is taken, counted and marked running in ``turn`` (what the monitor reads),
 * and its callback called; a float it returns goes to ``finished`` as
 * (watch, due), for the loop to watch it again. A callback's exception is
 * raised as it is, with turn.running cleared: the Python loop logs it and
 * calls again. Once a message on a busy connection, so none of it is Python.
 */
static PyObject *popleft_name, *small_one;

/* The fields of the reactor, of the loop's turn and of a watch that the loop reads
   and writes. */
static SlotField reactor_turn = {"_turn"}, turn_callbacks = {"callbacks"}, turn_running = {"running"},
                 watch_callback = {"callback"};

/* turn.running = None, keeping the exception that may be set. */
static int
clear_running(PyObject *turn)
{
    PyObject *type, *value, *traceback;
    int done;

    PyErr_Fetch(&type, &value, &traceback);
    done = slot_set(turn, &turn_running, Py_None);
    if (type != NULL) {
        if (done == 0)
            PyErr_Restore(type, value, traceback);
        else {  /* the new error wins; the callback's is dropped */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
        }
    }
    return done;
}

/* turn.callbacks += 1: 0, or -1 with an error. */
static int
count_callback(PyObject *turn)
{
    PyObject *count = slot_get(turn, &turn_callbacks), *next;
    int done;

    if (count == NULL)
        return -1;
    next = PyNumber_Add(count, small_one);
    Py_DECREF(count);
    if (next == NULL)
        return -1;
    done = slot_set(turn, &turn_callbacks, next);
    Py_DECREF(next);
    return done;
}

/* run_ready's loop, with ``popleft`` the ready deque's bound method (looked up
   once a run, not once a callback): 0 when done, or -1 with an error. */
static int
run_each_ready(PyObject *reactor, PyObject *turn, PyObject *ready, PyObject *popleft,
               PyObject *finished)
{
    PyObject *current, *watch, *callback, *due, *pair;
    Py_ssize_t waiting;

    for (;;) {
        waiting = PyObject_Length(ready);
        if (waiting <= 0)
            return (int)waiting;  /* (-1: error) */
        current = slot_get(reactor, &reactor_turn);
        if (current == NULL)
            return -1;
        Py_DECREF(current);  /* only its identity is compared */
        if (current != turn)
            return 0;  /* handed over while a callback blocked: an idle worker now */
        watch = PyObject_CallNoArgs(popleft);
        if (watch == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_IndexError))
                return -1;
            PyErr_Clear();  /* taken by the thread that has the loop now */
            return 0;
        }
        callback = slot_get(watch, &watch_callback);
        if (callback == NULL || count_callback(turn) < 0
                || slot_set(turn, &turn_running, watch) < 0) {
            Py_XDECREF(callback);
            Py_DECREF(watch);
            return -1;
        }
        due = PyObject_CallNoArgs(callback);
        Py_DECREF(callback);
        if (clear_running(turn) < 0 || due == NULL) {
            Py_XDECREF(due);
            Py_DECREF(watch);
            return -1;
        }
        if (PyFloat_CheckExact(due)) {
            pair = PyTuple_Pack(2, watch, due);
            if (pair == NULL || PyList_Append(finished, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(due);
                Py_DECREF(watch);
                return -1;
            }
            Py_DECREF(pair);
        }
        Py_DECREF(due);
        Py_DECREF(watch);
    }
}

static PyObject *
run_ready(PyObject *module, PyObject *args)
{
    PyObject *reactor, *turn, *ready, *finished, *popleft;
    int done;

    if (!PyArg_ParseTuple(args, "OOOO!:run_ready", &reactor, &turn, &ready,
                          &PyList_Type, &finished))
        return NULL;
    popleft = PyObject_GetAttr(ready, popleft_name);
    if (popleft == NULL)
        return NULL;
    done = run_each_ready(reactor, turn, ready, popleft, finished);
    Py_DECREF(popleft);
    if (done < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- take_armed and rearm_settled: the reactor's epoll bookkeeping, per event ------
 *
 * Reactor._collect's and Reactor._arm_all's usual steps (see reactor.py's
 * _take_armed_in_python and _rearm_settled_in_python, the same): the watches
 * epoll reported that are armed go to the ready deque, disarmed; a watch whose
 * callback returned a due time is armed again when nothing else changes. Once
 * a message on a busy connection each, so none of it is Python; what is not
 * usual is returned for the Python code, which knows the rest.
 */
static SlotField watch_armed = {"armed"}, watch_masked = {"masked"}, watch_again = {"again"},
                 watch_watched = {"watched"}, watch_timer = {"timer"}, watch_due = {"due"};

/* The truth of ``object``'s ``field``: 1, 0, or -1 with an error. */
static int
slot_truth(PyObject *object, SlotField *field)
{
    PyObject *value = slot_get(object, field);
    int truth;

    if (value == NULL)
        return -1;
    truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* The item ``index`` of ``sequence`` (from PySequence_Fast), which must be a tuple of
   two (borrowed); NULL with a TypeError when it is not. */
static PyObject *
pair_at(PyObject *sequence, Py_ssize_t index, const char *what)
{
    PyObject *item = PySequence_Fast_GET_ITEM(sequence, index);

    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_Format(PyExc_TypeError, "%s: each item must be a pair (a tuple of 2)", what);
        return NULL;
    }
    return item;
}

/* Queue the armed watch of one reported descriptor: 1 done, 0 not armed (or
   unknown), -1 error. */
static int
take_one(PyObject *fd, PyObject *watches, PyObject *append)
{
    PyObject *watch = PyDict_GetItemWithError(watches, fd), *result;  /* borrowed */
    int armed;

    if (watch == NULL)
        return PyErr_Occurred() ? -1 : 0;
    armed = slot_truth(watch, &watch_armed);
    if (armed <= 0)
        return armed;
    Py_INCREF(watch);  /* (kept while the slot lets go of nothing of it) */
    if (slot_set(watch, &watch_armed, Py_False) < 0) {
        Py_DECREF(watch);
        return -1;
    }
    result = PyObject_CallOneArg(append, watch);
    Py_DECREF(watch);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 1;
}

static PyObject *
take_armed(PyObject *module, PyObject *args)
{
    PyObject *events, *watches, *ready, *sequence, *append, *others = NULL, *pair;
    Py_ssize_t index;
    int taken;

    if (!PyArg_ParseTuple(args, "OO!O:take_armed", &events, &PyDict_Type, &watches, &ready))
        return NULL;
    sequence = PySequence_Fast(events, "take_armed: events must be a sequence");
    if (sequence == NULL)
        return NULL;
    append = PyObject_GetAttr(ready, append_name);
    if (append == NULL || (others = PyList_New(0)) == NULL)
        goto failed;
    for (index = 0; index < PySequence_Fast_GET_SIZE(sequence); index++) {
        if ((pair = pair_at(sequence, index, "take_armed")) == NULL)
            goto failed;
        taken = take_one(PyTuple_GET_ITEM(pair, 0), watches, append);
        if (taken < 0 || (taken == 0 && PyList_Append(others, PyTuple_GET_ITEM(pair, 0)) < 0))
            goto failed;
    }
    Py_DECREF(append);
    Py_DECREF(sequence);
    return others;

failed:
    Py_XDECREF(others);
    Py_XDECREF(append);
    Py_DECREF(sequence);
    return NULL;
}

/* Arm ``watch`` again for ``due`` when nothing else changes: 1 done, 0 not usual, -1 error. */
static int
rearm_one(PyObject *watch, PyObject *due)
{
    PyObject *timer;
    int flag, earlier;

    if ((flag = slot_truth(watch, &watch_masked)) != 0
            || (flag = slot_truth(watch, &watch_again)) != 0)
        return flag < 0 ? -1 : 0;
    if ((flag = slot_truth(watch, &watch_watched)) != 1)
        return flag;
    timer = slot_get(watch, &watch_timer);
    if (timer == NULL)
        return -1;
    earlier = PyObject_RichCompareBool(due, timer, Py_LT);
    Py_DECREF(timer);
    if (earlier != 0)
        return earlier < 0 ? -1 : 0;
    if (slot_set(watch, &watch_armed, Py_True) < 0 || slot_set(watch, &watch_due, due) < 0)
        return -1;
    return 1;
}

static PyObject *
rearm_settled(PyObject *module, PyObject *args)
{
    PyObject *finished, *sequence, *others, *pair;
    Py_ssize_t index;
    int armed;

    if (!PyArg_ParseTuple(args, "O:rearm_settled", &finished))
        return NULL;
    sequence = PySequence_Fast(finished, "rearm_settled: finished must be a sequence");
    if (sequence == NULL)
        return NULL;
    others = PyList_New(0);
    if (others == NULL)
        goto failed;
    for (index = 0; index < PySequence_Fast_GET_SIZE(sequence); index++) {
        if ((pair = pair_at(sequence, index, "rearm_settled")) == NULL)
            goto failed;
        armed = rearm_one(PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1));
        if (armed < 0 || (armed == 0 && PyList_Append(others, pair) < 0))
            goto failed;
    }
    Py_DECREF(sequence);
    return others;

failed:
    Py_XDECREF(others);
    Py_DECREF(sequence);
    return NULL;
}

static PyMethodDef speedups_methods[] = {
    {"run_ready", run_ready, METH_VARARGS,
     "run_ready(reactor, turn, ready, finished) -> None: the reactor loop's run of the\n"
     "callbacks in ready (a deque of watches), while reactor._turn is turn; a float a\n"
     "callback returns goes to finished as (watch, due); its exception is raised."},
    {"take_armed", take_armed, METH_VARARGS,
     "take_armed(events, watches, ready) -> [fd, ...]: the armed watches of epoll's\n"
     "events (fd, mask) disarmed and appended to ready; the other descriptors returned."},
    {"rearm_settled", rearm_settled, METH_VARARGS,
     "rearm_settled(finished) -> [(watch, due), ...]: each finished watch that is not\n"
     "masked, woken again, unwatched or due before its timer armed for due; the others\n"
     "returned."},
    {"split_request_head", split_request_head, METH_O,
     "split_request_head(head) -> (method, target, http11, [(name, value), ...]) | None:\n"
     "an HTTP/1.0 or 1.1 request head (without its final CRLFCRLF) of the usual kind,\n"
     "checked as protocol/http11.py's parse_head does; None for anything else."},
    {"request_environ", (PyCFunction)(void (*)(void))request_environ, METH_FASTCALL,
     "request_environ(head, environ, keys) -> bool | None: a usual HTTP/1.1 request head\n"
     "(without its final CRLFCRLF) into environ: the request line's keys, and each header\n"
     "under keys[name] (\"\": dropped); returns whether the connection stays open. None\n"
     "for any other head, environ then half filled (see the C source)."},
    {"short_frame", short_frame, METH_VARARGS,
     "short_frame(first_byte, payload) -> bytes: the frame of a short (< 126 bytes)\n"
     "payload, unmasked: first_byte, the length, the payload."},
#ifdef HAVE_NOWAIT_IO
    {"send_nowait", (PyCFunction)(void (*)(void))send_nowait, METH_FASTCALL,
     "send_nowait(sock, data) -> int: one send() with MSG_DONTWAIT, the GIL kept;\n"
     "the bytes written, 0 when the socket takes none now (OSError on failure)."},
    {"recv_nowait", (PyCFunction)(void (*)(void))recv_nowait, METH_FASTCALL,
     "recv_nowait(sock, size) -> bytes | None: one recv() with MSG_DONTWAIT, the GIL\n"
     "kept; b\"\" at the end, None when nothing has arrived (OSError on failure)."},
#endif
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated."},
    {"parse_messages", parse_messages, METH_VARARGS,
     "parse_messages(buffer, position, masked, limit, message_class, inflate)\n"
     "-> (events, position, error): the run of small whole text/binary frames at\n"
     "position, each as message_class(data) (None: data itself); compressed ones through\n"
     "inflate(payload, is_text) (None: not negotiated)."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "wsocket._speedups",
    "C accelerator for wsocket (optional; pure Python is used without it).",
    -1, speedups_methods
};

/* Every SlotField: their names are interned at the module's start. */
static SlotField *const slot_fields[] = {
    &reactor_turn, &turn_callbacks, &turn_running, &watch_callback, &watch_armed, &watch_masked, &watch_again,
    &watch_watched, &watch_timer, &watch_due,
#ifdef HAVE_NOWAIT_IO
    &websocket_closed, &core_close_sent, &core_failed, &core_receive_failed,
    &core_close_received, &core_frame, &core_message_opcode, &core_buffer, &core_size_limit,
    &sender_holding, &event_handlers, &sender_hold_frames, &queue_frames, &queue_lock, &queue_sealed,
    &queue_bytes, &queue_pushed, &queue_max_bytes,
    &transport_corked, &transport_receive_timeout, &transport_read_size, &keepalive_next_due,
    &keepalive_interval, &keepalive_last_received, &keepalive_ping_sent_at,
#endif
};

static int
intern_slot_fields(void)
{
    size_t index;

    for (index = 0; index < sizeof(slot_fields) / sizeof(slot_fields[0]); index++) {
        slot_fields[index]->name = PyUnicode_InternFromString(slot_fields[index]->text);
        if (slot_fields[index]->name == NULL)
            return -1;
    }
    return 0;
}

/* Every other string the module keeps, interned at its start: where it goes, its text. */
static const struct {
    PyObject **name;
    const char *text;
} interned_names[] = {
    {&data_name, "data"}, {&popleft_name, "popleft"}, {&append_name, "append"},
    {&request_method_key, "REQUEST_METHOD"}, {&script_name_key, "SCRIPT_NAME"},
    {&path_info_key, "PATH_INFO"}, {&query_string_key, "QUERY_STRING"},
    {&raw_uri_key, "RAW_URI"}, {&request_uri_key, "REQUEST_URI"},
    {&server_protocol_key, "SERVER_PROTOCOL"}, {&http11_text, "HTTP/1.1"},
    {&empty_text, ""}, {&get_text, "GET"},
#ifdef HAVE_NOWAIT_IO
    {&finish_name, "_finish_direct_send"}, {&hold_name, "hold"}, {&resume_name, "resume"},
    {&ended_by_error_name, "ended_by_error"}, {&heard_name, "heard"},
    {&receive_data_name, "receive_data"},
#endif
};

static int
intern_names(void)
{
    size_t index;

    for (index = 0; index < sizeof(interned_names) / sizeof(interned_names[0]); index++) {
        *interned_names[index].name = PyUnicode_InternFromString(interned_names[index].text);
        if (*interned_names[index].name == NULL)
            return -1;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module;

    small_one = PyLong_FromLong(1);
    if (small_one == NULL || intern_names() < 0 || intern_slot_fields() < 0) {
        return NULL;
    }
    init_byte_table(tchar_table, "!#$%&'*+-.^_`|~");
    init_byte_table(host_table, "-._~!$&'()*+,;=%[]:");
    module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
#ifdef HAVE_NOWAIT_IO
    {
        PyObject *socket_module = PyImport_ImportModule("_socket");
        PyObject *type = socket_module == NULL ? NULL
                         : PyObject_GetAttrString(socket_module, "socket");
        Py_XDECREF(socket_module);
        if (type == NULL || !PyType_Check(type)) {
            Py_XDECREF(type);
            Py_DECREF(module);
            return NULL;
        }
        socket_type = (PyTypeObject *)type;  /* kept for the module's life */
    }
    if (PyType_Ready(&LockType) < 0
            || PyType_Ready(&DirectSendType) < 0 || PyType_Ready(&DirectReceiveType) < 0
            || PyType_Ready(&EventTurnType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&LockType);
    if (PyModule_AddObject(module, "Lock", (PyObject *)&LockType) < 0) {
        Py_DECREF(&LockType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&DirectSendType);
    if (PyModule_AddObject(module, "DirectSend", (PyObject *)&DirectSendType) < 0) {
        Py_DECREF(&DirectSendType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&DirectReceiveType);
    if (PyModule_AddObject(module, "DirectReceive", (PyObject *)&DirectReceiveType) < 0) {
        Py_DECREF(&DirectReceiveType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "READ_SIZE", TRANSPORT_READ_SIZE) < 0
            || PyModule_AddIntConstant(module, "HOLD_LIMIT", HOLD_LIMIT) < 0
            || PyModule_AddIntConstant(module, "IDLE_READ_SIZE", TRANSPORT_IDLE_READ_SIZE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&EventTurnType);
    if (PyModule_AddObject(module, "EventTurn", (PyObject *)&EventTurnType) < 0) {
        Py_DECREF(&EventTurnType);
        Py_DECREF(module);
        return NULL;
    }
#endif
    return module;
}
