"""Turn values, gradients and check results into tables, JSON, Markdown and LaTeX (no maths here).

Each format is one module with the same three functions, ``forward(report, precision)``,
``backward(report, precision)`` and ``check(results)``, each returning the text to print.
"""


def write_report(path: str, text: str, mode: str = "w") -> None:
    """Write (or with ``mode="a"`` append) a report file. A failure, even one only the final
    flush meets (a full disk), is an OSError naming ``path``, so the command's one error line
    says which file could not be written."""
    try:
        with open(path, mode, encoding="utf-8") as file:
            file.write(text)
    except OSError as err:
        raise OSError(err.errno, err.strerror, path) from None
