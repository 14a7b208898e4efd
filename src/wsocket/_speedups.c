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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
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

static PyObject *
parse_messages(PyObject *module, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t position, limit;
    int masked;
    PyObject *message_class, *inflate, *messages, *error = Py_None, *result = NULL;
    const unsigned char *buffer;

    if (!PyArg_ParseTuple(args, "y*npnOO:parse_messages", &data, &position, &masked, &limit,
                          &message_class, &inflate)) {
        return NULL;
    }
    buffer = data.buf;
    messages = PyList_New(0);
    if (messages == NULL) {
        goto done;
    }
    while (position >= 0 && data.len - position >= 2) {
        const unsigned char *frame = buffer + position;
        Py_ssize_t available = data.len - position, size = 2, length;
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
                Py_CLEAR(messages);
                goto done;
            }
            position += size + length;
            value = PyObject_CallFunctionObjArgs(inflate, payload,
                                                 opcode == 1 ? Py_True : Py_False, NULL);
            Py_DECREF(payload);
            if (value == NULL) {
                /* The decompressor has moved on: this frame cannot be read
                   again, so its error is the caller's to raise. */
#if PY_VERSION_HEX >= 0x030C0000
                error = PyErr_GetRaisedException();
#else
                PyObject *type, *traceback;
                PyErr_Fetch(&type, &error, &traceback);
                PyErr_NormalizeException(&type, &error, &traceback);
                if (error != NULL && traceback != NULL) {
                    PyException_SetTraceback(error, traceback);
                }
                Py_XDECREF(type);
                Py_XDECREF(traceback);
#endif
                if (error == NULL) {
                    error = Py_None;  /* given its reference below */
                }
                break;
            }
        }
        else {
            value = decode_payload(frame + size, length, mask, opcode == 1);
            if (value == NULL) {
                if (PyErr_Occurred()) {
                    Py_CLEAR(messages);
                    goto done;
                }
                break;  /* invalid UTF-8: the Python path names the error */
            }
            position += size + length;
        }
        event = new_event(message_class, value);
        Py_DECREF(value);
        if (event == NULL || PyList_Append(messages, event) < 0) {
            Py_XDECREF(event);
            Py_CLEAR(messages);
            goto done;
        }
        Py_DECREF(event);
    }
    if (error == Py_None) {
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

static int
socket_descriptor(PyObject *sock)
{
    /* sock.fileno(); a closed socket (-1) raises OSError(EBADF), as its methods do. */
    int fd = PyObject_AsFileDescriptor(sock);
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

static PyMethodDef speedups_methods[] = {
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

PyMODINIT_FUNC
PyInit__speedups(void)
{
    data_name = PyUnicode_InternFromString("data");
    if (data_name == NULL) {
        return NULL;
    }
    return PyModule_Create(&speedups_module);
}
