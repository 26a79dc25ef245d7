"""`make bench`: the platform's performance figures, each beside a reference measured in the same run."""
