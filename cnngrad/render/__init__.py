"""Turn values, gradients and check results into tables, JSON, Markdown and LaTeX (no maths here).

Each format is one module with the same three functions, ``forward(report, precision)``,
``backward(report, precision)`` and ``check(results)``, each returning the text to print.
"""
