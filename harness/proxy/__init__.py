"""The transparent proxy: real workers and a real master, their traffic recorded, judged and faulted both ways."""
