"""A card as files a reviewer reads: one list of tables rendered as Markdown and HTML, plots,
the annotator report."""
