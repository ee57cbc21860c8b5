"""Who speaks: speaker embeddings of the voiced audio, clustered into speakers `S1`, `S2`, …"""
