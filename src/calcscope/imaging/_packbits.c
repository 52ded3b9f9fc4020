/* The PackBits walk of an RLE Lossless segment (DICOM PS3.5 Annex G), compiled.
 *
 * count(data, start, end, need, cols) returns exactly what the pure-Python
 * calcscope.imaging.codec_checks._packbits_count_py returns: the bytes the segment
 * data[start:end] decodes to (stopping at need, one past it when a run crosses it, short
 * when the data end or a literal run is cut), the offset where the walk stopped, and the
 * first output byte of the first run that crosses the end of a row of cols bytes (None
 * when none does). Only control bytes are read; the caller guarantees
 * 0 <= start and end <= len(data) (else IndexError) and need, cols small enough that no
 * sum overflows (the Python wrapper checks both).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
packbits_count(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t start, end, need, cols;
    if (!PyArg_ParseTuple(args, "y*nnnn", &buf, &start, &end, &need, &cols)) {
        return NULL;
    }
    if (start < 0 || end > buf.len) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_IndexError, "the segment lies outside the data");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)buf.buf;
    Py_ssize_t produced = 0, i = start, crossed = -1, consumed;
    Py_ssize_t row_end = cols; /* the end of the row where the next run starts */
    int cut = 0;
    Py_BEGIN_ALLOW_THREADS
    while (produced < need && i < end) {
        Py_ssize_t n = data[i], count, next;
        if (n < 128) { /* n + 1 literal bytes follow */
            count = n + 1;
            i += n + 2;
            if (i > end) { /* the literal run is cut */
                produced = produced + count - (i - end);
                cut = 1;
                break;
            }
        }
        else if (n > 128) { /* the next byte, 257 - n times */
            count = 257 - n;
            i += 2;
        }
        else { /* 128: no operation */
            i += 1;
            continue;
        }
        next = produced + count;
        if (crossed < 0) {
            if (next > row_end) {
                crossed = produced;
            }
            else if (next == row_end) {
                row_end += cols;
            }
        }
        produced = next;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    consumed = (cut || i > end) ? end : i;
    if (crossed < 0) {
        return Py_BuildValue("nnO", produced, consumed, Py_None);
    }
    return Py_BuildValue("nnn", produced, consumed, crossed);
}

static PyMethodDef packbits_methods[] = {
    {"count", packbits_count, METH_VARARGS,
     "count(data, start, end, need, cols) -> (produced, consumed, crossed or None): the "
     "PackBits walk of data[start:end] (see calcscope.imaging.codec_checks)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef packbits_module = {
    PyModuleDef_HEAD_INIT, "_packbits",
    "The PackBits walk of RLE Lossless segments, compiled (calcscope.imaging.codec_checks).",
    -1, packbits_methods,
};

PyMODINIT_FUNC
PyInit__packbits(void)
{
    return PyModule_Create(&packbits_module);
}
