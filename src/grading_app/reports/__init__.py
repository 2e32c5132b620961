"""Analytics and exports: figures over a batch, a job or everything, and gradebooks in
CSV, JSON, XLSX and ZIP, streamed."""
