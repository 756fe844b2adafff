"""Operations: watching deployed models once they serve.

Online, on the request path's side: ``trace`` carries what one request did from the front end
to inference; ``request_log`` writes one JSON line per request; ``collector`` keeps a sample of
payloads in rolling Parquet/JSONL files, turned into columns by ``payloads``; both write through
``writer``'s bounded queue and background thread; ``gpu`` reports NVIDIA GPUs through NVML.

Offline: ``tables`` reads the data to compare (files, folders, and the payload online
deployments collect), ``drift`` compares a target table with a baseline column by column and
decides, and ``report`` renders a comparison as one self-contained HTML file. Those are
imported only by the commands that need them: scipy stays out of every other CLI call.
"""
