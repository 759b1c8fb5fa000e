"""The sandbox suite: the fake Systeme.io API and Maton gateway/control API, in-process and over HTTP."""
