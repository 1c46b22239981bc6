import sys
print("This is doit.py!")
print("My args are %r" % (sys.argv,))
