#!/usr/bin/env python3
import sys

print("hello from app", sys.version)
