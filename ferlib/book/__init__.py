"""What the book needs: evidence records, recorded real-data runs, chapter execution and the site check."""
